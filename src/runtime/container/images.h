// Getting images in place before replicas start, as `docker compose up
// --build` does: services with `build:` are built, missing images pulled.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "common/result.h"
#include "runtime/container/engine.h"
#include "spec/model.h"

namespace zeppelin::runtime::container {

// Receives progress: `line` replaces the previous line for the same `key` on
// a terminal; elsewhere only lines with `final` set are worth printing.
using ProgressSink = std::function<void(const std::string& key, const std::string& line, bool final)>;

// Builds the images of services with `build:` and pulls those missing, one
// service at a time; returns each image service's image ID, so that the
// server runs exactly these images. Errors name the service (and, for
// builds, end with the build's last lines of output).
Result<std::map<std::string, std::string>> prepare_images(Engine& engine, boost::asio::io_context& io,
                                                          const spec::System& system, const ProgressSink& progress);

// Pulls `image` on the engine's event loop: `on_item` (may be empty) sees each
// progress object as it arrives; `done` gets ok, or why the pull failed.
void pull_image(Engine& engine, const std::string& image, std::function<void(const nlohmann::json&)> on_item,
                std::function<void(Status)> done);

// "busybox:1.35" -> {"busybox", "1.35"}; no tag -> "latest"; digests kept whole.
std::pair<std::string, std::string> split_image_reference(const std::string& image);

// The build context directory as an uncompressed tar archive, in memory.
Result<std::string> tar_directory(const std::string& dir);

}  // namespace zeppelin::runtime::container
