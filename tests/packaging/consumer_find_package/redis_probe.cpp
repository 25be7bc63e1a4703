// Links through herald::redis: herald's headers and hiredis', and libhiredis.
#include <herald/websocket/frame.hpp>  // herald::herald comes along (a light header: no Asio)
#include <hiredis/hiredis.h>

#include <iostream>

int main() {
  redisReader* reader = redisReaderCreate();
  if (!reader) return 1;
  redisReaderFree(reader);
  std::cout << "ok redis_probe (hiredis " << HIREDIS_MAJOR << "." << HIREDIS_MINOR << ")" << std::endl;
  return 0;
}
