// How listings print, the same for every command: `-o table` (aligned
// columns with a header line, the default), `-o json` (the API's objects,
// indented) or `-o yaml` (the same objects as one YAML document).
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace zeppelin::cli {

// Adds -o,--output to `command`, checked against table, json and yaml.
CLI::Option* add_output_flag(CLI::App* command, std::string& format);

// Prints `items` as json or yaml; false (printing nothing) for "table".
bool print_structured(const nlohmann::json& items, const std::string& format);

// Prints `rows` under `headers`, each column as wide as its widest cell.
void print_table(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows);

}  // namespace zeppelin::cli
