<?php
// Push to herald from another project, in plain PHP (php-cli, no extension needed): the
// seed's "push from another project", both ways.
//
//   1. Over the HTTP push API of uid_push_server --http-port P --api-key K (or cluster_node,
//      or any server using herald/http_api.hpp); the key comes from HERALD_API_KEY:
//        HERALD_API_KEY=secret php push_from_php.php http http://127.0.0.1:8080 alice 'hello'
//        HERALD_API_KEY=secret php push_from_php.php http http://127.0.0.1:8080 all 'to everyone'
//        HERALD_API_KEY=secret php push_from_php.php http http://127.0.0.1:8080 group:lobby 'to the lobby'
//        HERALD_API_KEY=secret php push_from_php.php online http://127.0.0.1:8080 alice
//        HERALD_API_KEY=secret php push_from_php.php presence http://127.0.0.1:8080
//      (POST /send/<uid>, /broadcast, /group/<name>; GET /online/<uid>, /presence.)
//   2. Straight into Redis, where every cluster_node listens (no herald node address needed):
//        php push_from_php.php redis 127.0.0.1:6379 herald alice 'hello'
//        php push_from_php.php redis 127.0.0.1:6379 herald all 'to everyone'
//        php push_from_php.php redis 127.0.0.1:6379 herald group:lobby 'to the lobby'
//      It is `PUBLISH <prefix>:uid:<uid> <message>` (or `<prefix>:all`, `<prefix>:group:<name>`),
//      written in RESP by hand; HERALD_REDIS_PASSWORD is sent with AUTH when set.
//
// A target is a uid, "all" (a broadcast) or "group:<name>" (every member of the group; the
// example servers refuse ':' in uids, so this is never a uid). Prints the answer (JSON for
// HTTP); exits 1 on failure (an HTTP status other than 200 included), 2 on bad usage.

function fail(string $why): void {
    fwrite(STDERR, "push_from_php: $why\n");
    exit(1);
}

// A target -> [kind, name]: ['uid', 'alice'], ['all', ''] or ['group', 'lobby'].
function parse_target(string $target): array {
    if ($target === 'all') return ['all', ''];
    if (strncmp($target, 'group:', 6) === 0) {
        $name = substr($target, 6);
        if ($name === '') fail('group: needs a name (group:<name>)');
        return ['group', $name];
    }
    return ['uid', $target];
}

// One request with "Authorization: Bearer <key>"; returns the decoded JSON answer.
function api_request(string $base, string $key, string $method, string $path, ?string $body = null): array {
    $http = [
        'method' => $method,
        'header' => "Authorization: Bearer $key\r\n",
        'timeout' => 5,
        'ignore_errors' => true,   // read the JSON of 4xx answers too
    ];
    if ($body !== null) {
        $http['header'] .= "Content-Type: text/plain; charset=utf-8\r\n";
        $http['content'] = $body;
    }
    $answer = @file_get_contents(rtrim($base, '/') . $path, false, stream_context_create(['http' => $http]));
    if ($answer === false) fail("cannot reach $base");
    $status = 0;
    foreach ($http_response_header as $line) {
        if (preg_match('#^HTTP/\S+ (\d{3})#', $line, $m)) $status = (int)$m[1];
    }
    if ($status !== 200) fail("HTTP $status: " . trim($answer));
    $json = json_decode($answer, true);
    if (!is_array($json)) fail('not JSON: ' . trim($answer));
    return $json;
}

// POST /send/<uid>, /broadcast or /group/<name>; returns {"delivered": n, ...}.
function push_http(string $base, string $key, string $target, string $message): array {
    [$kind, $name] = parse_target($target);
    $path = $kind === 'all' ? '/broadcast' : ($kind === 'group' ? '/group/' : '/send/') . rawurlencode($name);
    return api_request($base, $key, 'POST', $path, $message);
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

// PUBLISH <prefix>:uid:<uid>, <prefix>:all or <prefix>:group:<name>; returns how many nodes received it.
function push_redis(string $address, string $prefix, string $target, string $message, string $password = ''): int {
    [$kind, $name] = parse_target($target);
    $socket = @stream_socket_client("tcp://$address", $errno, $errstr, 5);
    if (!$socket) fail("cannot connect to Redis at $address: $errstr");
    stream_set_timeout($socket, 5);
    if ($password !== '') redis_command($socket, ['AUTH', $password]);
    $channel = $kind === 'all' ? "$prefix:all" : "$prefix:$kind:$name";
    $reply = redis_command($socket, ['PUBLISH', $channel, $message]);
    fclose($socket);
    return (int)substr($reply, 1);
}

function api_key(): string {
    $key = getenv('HERALD_API_KEY');
    if ($key === false || $key === '') fail('set HERALD_API_KEY to the server\'s --api-key');
    return $key;
}

$argv = $_SERVER['argv'];
$mode = $argv[1] ?? '';
if ($mode === 'http' && count($argv) === 5) {
    echo json_encode(push_http($argv[2], api_key(), $argv[3], $argv[4])), "\n";
} elseif ($mode === 'online' && count($argv) === 4) {
    echo json_encode(api_request($argv[2], api_key(), 'GET', '/online/' . rawurlencode($argv[3]))), "\n";
} elseif ($mode === 'presence' && count($argv) === 3) {
    echo json_encode(api_request($argv[2], api_key(), 'GET', '/presence')), "\n";
} elseif ($mode === 'redis' && count($argv) === 6) {
    $nodes = push_redis($argv[2], $argv[3], $argv[4], $argv[5], (string)getenv('HERALD_REDIS_PASSWORD'));
    echo "published to $nodes node(s)\n";
} else {
    fwrite(STDERR, "usage: php push_from_php.php http BASE-URL TARGET MESSAGE      (key in HERALD_API_KEY)\n" .
                   "       php push_from_php.php online BASE-URL UID\n" .
                   "       php push_from_php.php presence BASE-URL\n" .
                   "       php push_from_php.php redis HOST:PORT PREFIX TARGET MESSAGE\n" .
                   "TARGET: a uid, 'all' (everyone) or 'group:<name>' (every member of the group).\n");
    exit(2);
}
