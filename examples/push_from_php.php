<?php
// Push to herald from another project, in plain PHP (php-cli, no extension needed): the
// seed's "push from another project", both ways.
//
//   1. Over the HTTP push API of a cluster_node (or any server using herald/http_api.hpp):
//        HERALD_API_KEY=secret php push_from_php.php http http://127.0.0.1:8080 alice 'hello'
//        HERALD_API_KEY=secret php push_from_php.php http http://127.0.0.1:8080 all 'to everyone'
//   2. Straight into Redis, where every cluster_node listens (no herald node address needed):
//        php push_from_php.php redis 127.0.0.1:6379 herald alice 'hello'
//        php push_from_php.php redis 127.0.0.1:6379 herald all 'to everyone'
//      It is `PUBLISH <prefix>:uid:<uid> <message>` (or `<prefix>:all`), written in RESP by hand.
//
// The uid "all" means a broadcast. Prints the answer; exits 1 on failure.

function fail(string $why): void {
    fwrite(STDERR, "push_from_php: $why\n");
    exit(1);
}

// POST /send/<uid> or /broadcast with "Authorization: Bearer <key>"; returns the JSON answer.
function push_http(string $base, string $key, string $uid, string $message): array {
    $path = $uid === 'all' ? '/broadcast' : '/send/' . rawurlencode($uid);
    $context = stream_context_create(['http' => [
        'method' => 'POST',
        'header' => "Authorization: Bearer $key\r\nContent-Type: text/plain; charset=utf-8\r\n",
        'content' => $message,
        'timeout' => 5,
        'ignore_errors' => true,   // read the JSON of 4xx answers too
    ]]);
    $body = @file_get_contents(rtrim($base, '/') . $path, false, $context);
    if ($body === false) fail("cannot reach $base");
    $status = 0;
    foreach ($http_response_header as $line) {
        if (preg_match('#^HTTP/\S+ (\d{3})#', $line, $m)) $status = (int)$m[1];
    }
    $answer = json_decode($body, true);
    if ($status !== 200) fail("HTTP $status: " . trim($body));
    return $answer;
}

// One RESP command over a socket; returns the reply line (":<n>" for PUBLISH).
function redis_command($socket, array $args): string {
    $cmd = '*' . count($args) . "\r\n";
    foreach ($args as $a) $cmd .= '$' . strlen($a) . "\r\n" . $a . "\r\n";
    if (fwrite($socket, $cmd) !== strlen($cmd)) fail('write to Redis failed');
    $line = fgets($socket);
    if ($line === false) fail('no answer from Redis');
    if ($line[0] === '-') fail('Redis: ' . trim(substr($line, 1)));
    return trim($line);
}

// PUBLISH <prefix>:uid:<uid> (or <prefix>:all); returns how many nodes received it.
function push_redis(string $address, string $prefix, string $uid, string $message, string $password = ''): int {
    $socket = @stream_socket_client("tcp://$address", $errno, $errstr, 5);
    if (!$socket) fail("cannot connect to Redis at $address: $errstr");
    stream_set_timeout($socket, 5);
    if ($password !== '') redis_command($socket, ['AUTH', $password]);
    $channel = $uid === 'all' ? "$prefix:all" : "$prefix:uid:$uid";
    $reply = redis_command($socket, ['PUBLISH', $channel, $message]);
    fclose($socket);
    return (int)substr($reply, 1);
}

$argv = $_SERVER['argv'];
$mode = $argv[1] ?? '';
if ($mode === 'http' && count($argv) === 5) {
    $key = getenv('HERALD_API_KEY');
    if ($key === false || $key === '') fail('set HERALD_API_KEY');
    echo json_encode(push_http($argv[2], $key, $argv[3], $argv[4])), "\n";
} elseif ($mode === 'redis' && count($argv) === 6) {
    $nodes = push_redis($argv[2], $argv[3], $argv[4], $argv[5], (string)getenv('HERALD_REDIS_PASSWORD'));
    echo "published to $nodes node(s)\n";
} else {
    fwrite(STDERR, "usage: php push_from_php.php http BASE-URL UID MESSAGE     (key in HERALD_API_KEY)\n" .
                   "       php push_from_php.php redis HOST:PORT PREFIX UID MESSAGE\n" .
                   "UID 'all' broadcasts.\n");
    exit(2);
}
