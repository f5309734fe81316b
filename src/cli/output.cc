#include "cli/output.h"

#include <algorithm>
#include <iostream>

#include "common/yaml_emitter.h"

namespace zeppelin::cli {

CLI::Option* add_output_flag(CLI::App* command, std::string& format) {
  return command->add_option("-o,--output", format, "table, json or yaml")
      ->check(CLI::IsMember({"table", "json", "yaml"}))
      ->capture_default_str();
}

bool print_structured(const nlohmann::json& items, const std::string& format) {
  if (format == "json") {
    std::cout << items.dump(2) << "\n";
    return true;
  }
  if (format == "yaml") {
    std::string out;
    append_yaml_document(out, nlohmann::ordered_json(items));
    std::cout << out;
    return true;
  }
  return false;
}

void print_table(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& h : headers) widths.push_back(h.size());
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size() && i < widths.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  auto print_row = [&](const std::vector<std::string>& cells) {
    std::string line;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      line += cells[i];
      if (i + 1 < cells.size()) line.append(widths[i] + 2 - std::min(widths[i] + 2, cells[i].size()), ' ');
    }
    std::cout << line << "\n";
  };
  print_row(headers);
  for (const auto& row : rows) print_row(row);
}

}  // namespace zeppelin::cli
