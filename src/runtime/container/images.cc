#include "runtime/container/images.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>


namespace zeppelin::runtime::container {

namespace fs = std::filesystem;
using nlohmann::json;

Result<std::string> tar_directory(const std::string& dir) {
  std::string out;
  std::unique_ptr<archive, decltype(&archive_write_free)> ar(archive_write_new(), archive_write_free);
  archive_write_set_format_pax_restricted(ar.get());
  auto append = [](archive*, void* data, const void* buf, size_t n) -> la_ssize_t {
    static_cast<std::string*>(data)->append(static_cast<const char*>(buf), n);
    return static_cast<la_ssize_t>(n);
  };
  archive_write_set_bytes_in_last_block(ar.get(), 1);
  if (archive_write_open(ar.get(), &out, nullptr, append, nullptr) != ARCHIVE_OK) {
    return make_error(Errc::kInternal, std::string("cannot write a tar archive: ") + archive_error_string(ar.get()));
  }
  std::error_code ec;
  // Sorted, so that the same directory always makes the same archive.
  std::vector<fs::path> paths;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) paths.push_back(it->path());
  if (ec) return make_error(Errc::kInvalidArgument, "cannot read build context " + dir + ": " + ec.message());
  std::sort(paths.begin(), paths.end());
  for (const auto& path : paths) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) continue;  // vanished meanwhile
    // lexically: fs::relative would follow a symlink to its target's name.
    const std::string name = path.lexically_relative(dir).generic_string();
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> entry(archive_entry_new(), archive_entry_free);
    archive_entry_copy_stat(entry.get(), &st);
    archive_entry_set_pathname(entry.get(), name.c_str());
    std::string content;
    if (S_ISLNK(st.st_mode)) {
      archive_entry_set_symlink(entry.get(), fs::read_symlink(path, ec).c_str());
    } else if (S_ISREG(st.st_mode)) {
      std::ifstream in(path, std::ios::binary);
      if (!in) return make_error(Errc::kInvalidArgument, "cannot read " + path.string() + " for the build context");
      content.assign(std::istreambuf_iterator<char>(in), {});
      archive_entry_set_size(entry.get(), static_cast<la_int64_t>(content.size()));
    } else if (!S_ISDIR(st.st_mode)) {
      continue;  // sockets, fifos, devices have no place in a build context
    }
    if (archive_write_header(ar.get(), entry.get()) != ARCHIVE_OK ||
        (!content.empty() && archive_write_data(ar.get(), content.data(), content.size()) < 0)) {
      return make_error(Errc::kInternal, "cannot add " + name + " to the build context: " + archive_error_string(ar.get()));
    }
  }
  if (archive_write_close(ar.get()) != ARCHIVE_OK) {
    return make_error(Errc::kInternal, std::string("cannot finish the build context: ") + archive_error_string(ar.get()));
  }
  return out;
}

namespace {

// Splits a stream of JSON objects (one per line, cut anywhere) into objects.
class JsonLines {
 public:
  explicit JsonLines(std::function<void(const json&)> on_item) : on_item_(std::move(on_item)) {}
  void feed(std::string_view data) {
    pending_.append(data);
    std::size_t start = 0;
    for (auto nl = pending_.find('\n'); nl != std::string::npos; nl = pending_.find('\n', start)) {
      auto item = json::parse(pending_.substr(start, nl - start), nullptr, false);
      if (!item.is_discarded()) on_item_(item);
      start = nl + 1;
    }
    pending_.erase(0, start);
  }

 private:
  std::function<void(const json&)> on_item_;
  std::string pending_;
};

// Runs one streamed engine request to completion on `io`.
Result<EngineResponse> run_stream(Engine& engine, boost::asio::io_context& io, const std::string& method,
                                  const std::string& target, std::string body, const std::string& content_type,
                                  JsonLines& lines) {
  Result<EngineResponse> result = make_error(Errc::kInternal, "no answer from the container engine");
  engine.stream(
      method, target, std::move(body), [&lines](std::string_view d) { lines.feed(d); },
      [&result](Result<EngineResponse> r) { result = std::move(r); }, content_type);
  io.restart();
  io.run();
  return result;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

Status build_image(Engine& engine, boost::asio::io_context& io, const spec::Service& svc, const ProgressSink& progress) {
  const spec::Build& build = *svc.build;
  if (!fs::exists(fs::path(build.context) / build.dockerfile)) {
    return make_error(Errc::kInvalidArgument, "service \"" + svc.name + "\": no " + build.dockerfile + " in build context " +
                                                  build.context);
  }
  auto context = tar_directory(build.context);
  if (!context) return make_error(context.error().code, "service \"" + svc.name + "\": " + context.error().message);
  json args = json::object();
  for (const auto& [k, v] : build.args) args[k] = v;
  const std::string target = "/build?t=" + query_escape(svc.image) + "&dockerfile=" + query_escape(build.dockerfile) +
                             "&buildargs=" + query_escape(args.dump()) + "&rm=1";
  std::deque<std::string> last_lines;  // shown when the build fails
  std::string error;
  JsonLines lines([&](const json& item) {
    if (item.contains("error")) error = item.value("error", "");
    if (!item.contains("stream") || !item["stream"].is_string()) return;
    std::string text = trim(item["stream"].get<std::string>());
    if (text.empty()) return;
    progress(svc.name, "building " + svc.name + ": " + text.substr(0, 120), false);
    last_lines.push_back(std::move(text));
    if (last_lines.size() > 10) last_lines.pop_front();
  });
  progress(svc.name, "building " + svc.name + " (" + svc.image + ")", false);
  auto r = run_stream(engine, io, "POST", target, std::move(*context), "application/x-tar", lines);
  if (r && !r->ok()) error = r->message();
  if (!r) error = r.error().message;
  if (!error.empty()) {
    std::string message = "service \"" + svc.name + "\": build failed: " + trim(error);
    if (!last_lines.empty()) message += "\nlast lines of the build:";
    for (const auto& l : last_lines) message += "\n  " + l;
    return make_error(Errc::kInvalidArgument, message);
  }
  progress(svc.name, "built " + svc.name + " (" + svc.image + ")", true);
  return ok_status();
}

Status pull_with_progress(Engine& engine, boost::asio::io_context& io, const spec::Service& svc,
                          const ProgressSink& progress) {
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> layers;  // id -> (current, total)
  auto on_item = [&](const json& item) {
    const std::string id = item.value("id", "");
    if (id.empty() || !item.contains("progressDetail") || !item["progressDetail"].is_object()) return;
    const json& d = item["progressDetail"];
    auto& layer = layers[id];
    if (d.contains("total")) layer = {d.value("current", std::int64_t{0}), d.value("total", std::int64_t{0})};
    if (item.value("status", "") == "Pull complete") layer.first = layer.second;
    std::int64_t current = 0, total = 0;
    int complete = 0;
    for (const auto& [_, l] : layers) {
      current += l.first;
      total += l.second;
      complete += l.second > 0 && l.first >= l.second;
    }
    progress(svc.name, "pulling " + svc.image + ": " + std::to_string(complete) + "/" + std::to_string(layers.size()) +
                           " layers, " + std::to_string(current >> 20) + "/" + std::to_string(total >> 20) + " MiB",
             false);
  };
  progress(svc.name, "pulling " + svc.image, false);
  Status pulled;
  pull_image(engine, svc.image, on_item, [&pulled](const Status& s) { pulled = s; });
  io.restart();
  io.run();
  if (!pulled) return make_error(pulled.error().code, "service \"" + svc.name + "\": " + pulled.error().message);
  progress(svc.name, "pulled " + svc.image, true);
  return ok_status();
}

}  // namespace

std::pair<std::string, std::string> split_image_reference(const std::string& image) {
  if (image.find('@') != std::string::npos) return {image, ""};
  const auto slash = image.rfind('/');
  const auto colon = image.rfind(':');
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
    return {image.substr(0, colon), image.substr(colon + 1)};
  }
  return {image, "latest"};
}

void pull_image(Engine& engine, const std::string& image, std::function<void(const json&)> on_item,
                std::function<void(Status)> done) {
  auto [repo, tag] = split_image_reference(image);
  std::string target = "/images/create?fromImage=" + query_escape(repo);
  if (!tag.empty()) target += "&tag=" + query_escape(tag);
  // Progress is a stream of JSON objects; a failure arrives as {"error": ...} in a 200 answer.
  struct Pull {
    std::string error;
    std::unique_ptr<JsonLines> lines;
  };
  auto pull = std::make_shared<Pull>();
  pull->lines = std::make_unique<JsonLines>([raw = pull.get(), on_item = std::move(on_item)](const json& item) {
    if (item.contains("error")) raw->error = item.value("error", "");
    if (on_item) on_item(item);
  });
  engine.stream(
      "POST", target, "", [pull](std::string_view d) { pull->lines->feed(d); },
      [pull, image, done = std::move(done)](Result<EngineResponse> r) {
        const std::string why = !r ? r.error().message : !r->ok() ? r->message() : pull->error;
        if (why.empty()) return done(ok_status());
        done(make_error(Errc::kNotFound, "image " + image + " is not present and could not be pulled: " + trim(why)));
      });
}

Result<std::map<std::string, std::string>> prepare_images(Engine& engine, boost::asio::io_context& io,
                                                          const spec::System& system, const ProgressSink& progress) {
  std::map<std::string, std::string> ids;
  for (const auto& svc : system.services) {
    if (!svc.is_container()) continue;
    if (svc.build) {
      if (auto s = build_image(engine, io, svc, progress); !s) return s.error();
    }
    // The name goes in the path as it is: references hold only [a-zA-Z0-9._/:@-].
    auto inspect = engine.call("GET", "/images/" + svc.image + "/json");
    if (inspect && inspect->status == 404 && !svc.build) {
      if (auto s = pull_with_progress(engine, io, svc, progress); !s) return s.error();
      inspect = engine.call("GET", "/images/" + svc.image + "/json");
    }
    if (!inspect) return make_error(inspect.error().code, "service \"" + svc.name + "\": " + inspect.error().message);
    if (!inspect->ok()) {
      return make_error(Errc::kUnavailable, "service \"" + svc.name + "\": cannot inspect image " + svc.image + ": " +
                                                inspect->message());
    }
    ids[svc.name] = inspect->json().value("Id", svc.image);
  }
  return ids;
}

}  // namespace zeppelin::runtime::container
