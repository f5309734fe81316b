#include "cli/cli.h"

int main(int argc, char** argv) { return zeppelin::cli::main(argc, argv); }
