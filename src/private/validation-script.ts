import { VALIDATION_HEREDOC_END, VALIDATION_MARKER, VALIDATION_REPORT_PREFIX } from './contract';

/** Minutes after the validation's timeout at which the test instance shuts itself down (and so terminates). */
export const BACKSTOP_MARGIN_MINUTES = 10;

/**
 * The test instance's user data: runs the validation script as root once cloud-init reaches user scripts,
 * and reports every output line and the exit code on the serial console, where the handler reads them
 * (GetConsoleOutput: no role, no network path and no agent needed on the instance).
 *
 * A shutdown is scheduled first as a backstop: the test instance launches with shutdown behaviour
 * `terminate`, so it goes away even if nobody is left to terminate it.
 */
export function validationUserData(script: string, timeoutSeconds: number): string {
  const backstopMinutes = Math.ceil(timeoutSeconds / 60) + BACKSTOP_MARGIN_MINUTES;
  return [
    '#!/bin/bash',
    VALIDATION_MARKER,
    `shutdown -h +${backstopMinutes} >/dev/null 2>&1 || true`,
    'exec 3>/dev/console',
    'script="$(mktemp)"',
    `cat > "$script" <<'${VALIDATION_HEREDOC_END}'`,
    script.replace(/\n$/, ''),
    VALIDATION_HEREDOC_END,
    `echo '${VALIDATION_REPORT_PREFIX}: begin' >&3`,
    `bash "$script" 2>&1 < /dev/null | while IFS= read -r line || [ -n "$line" ]; do printf '${VALIDATION_REPORT_PREFIX}| %s\\n' "$line" >&3; done`,
    'code=${PIPESTATUS[0]}',
    'rm -f "$script"',
    `echo "${VALIDATION_REPORT_PREFIX}: exit $code" >&3`,
    '',
  ].join('\n');
}
