// For the Node tests (tests/interop/node_client_test.mjs, tests/browser/browser_test.mjs):
// their npm packages come from `npm ci` in their directory (bash tests/run_all.sh runs it).
// Without them a test is skipped, saying which command installs them, instead of failing with
// ERR_MODULE_NOT_FOUND: it exits with SKIP_CODE, which ctest reports as skipped
// (SKIP_RETURN_CODE in tests/CMakeLists.txt). tests/run_all.sh fails when one of them is skipped.
//
//   const { default: WebSocket } = await importOrSkip(import('ws'), "Node's ws", '(cd tests/interop && npm ci)');
//
// The import() is the caller's, so that the package is resolved from the caller's directory.
export const SKIP_CODE = 77;

export function skip(why) {
  console.log(`skipped: ${why}`);
  process.exit(SKIP_CODE);
}

export async function importOrSkip(importing, what, installCommand) {
  try {
    return await importing;
  } catch (e) {
    if (e && e.code === 'ERR_MODULE_NOT_FOUND') {
      skip(`${what} is not installed (${String(e.message).split('\n')[0]}); install it with: ${installCommand}` +
           ' (bash tests/run_all.sh does)');
    }
    throw e;
  }
}
