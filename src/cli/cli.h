// The `zeppelin` command line. Exit codes: 0 success, 1 runtime failure,
// 2 usage or validation error.
#pragma once

namespace zeppelin::cli {

int main(int argc, char** argv);

}  // namespace zeppelin::cli
