// Giving freed memory back to the system after a large request: allocators
// keep what a request freed for the next one, so one huge answer would leave
// the process that much bigger for good.
#pragma once

#include <malloc.h>

#include <cstddef>

// gperftools' C entry point, present when the binary is linked with tcmalloc
// (ZEPPELIN_TCMALLOC); weak, so that the code links without it.
extern "C" void MallocExtension_ReleaseFreeMemory(void) __attribute__((weak));

namespace zeppelin {

// Requests or answers at least this large are followed by release_free_memory().
inline constexpr std::size_t kReleaseAfterBytes = std::size_t{4} << 20;

// Returns the allocator's free pages to the system (tcmalloc's page heap, or
// glibc's arenas with malloc_trim).
inline void release_free_memory() {
  if (MallocExtension_ReleaseFreeMemory != nullptr) {
    MallocExtension_ReleaseFreeMemory();
  } else {
    ::malloc_trim(0);
  }
}

}  // namespace zeppelin
