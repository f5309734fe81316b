// Network health probes run on the event loop: a TCP connect, or an HTTP GET
// whose status must be 2xx or 3xx (as Kubernetes' httpGet probe).
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <string>

namespace zeppelin::supervisor {

void probe_tcp(boost::asio::io_context& io, const std::string& host, int port, std::chrono::milliseconds timeout,
               std::function<void(bool ok)> done);

void probe_http(boost::asio::io_context& io, const std::string& host, int port, const std::string& path,
                std::chrono::milliseconds timeout, std::function<void(bool ok)> done);

// Whether something already listens on host:port (another program on the
// address, or on 0.0.0.0): a replica about to start there could not bind.
bool port_taken(const std::string& host, int port);

}  // namespace zeppelin::supervisor
