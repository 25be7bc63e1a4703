// herald: real-time push over WebSocket, as a header-only C++20 coroutine library on Asio.
// This is the one header an application includes.
#ifndef HERALD_HPP
#define HERALD_HPP

#include "herald/detail/asio.hpp"
#include "herald/listen.hpp"
#include "herald/message.hpp"
#include "herald/options.hpp"
#include "herald/policy/multi_thread.hpp"
#include "herald/policy/single_thread.hpp"
#include "herald/registry.hpp"
#include "herald/websocket/frame.hpp"
#include "herald/websocket/handshake.hpp"
#include "herald/websocket/parser.hpp"
#include "herald/ws_session.hpp"

#endif  // HERALD_HPP
