// The signals the server's event loop handles (boost::asio signal_sets: a
// child's exit, Ctrl-C, termination). A handled signal interrupts whatever
// blocking call the thread it lands on is in (EINTR: no handler of ours sets
// SA_RESTART), so only the loop's thread takes them; every other thread of
// the server blocks them.
#pragma once

namespace zeppelin {

// Blocks (true) or unblocks (false) the loop's signals in the calling thread.
// Threads it starts afterwards, directly or inside a library, inherit its mask.
void block_loop_signals(bool blocked);

}  // namespace zeppelin
