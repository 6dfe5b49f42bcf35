// One POST with bounded retries: each attempt bounded in time, the whole delivery too; network
// errors, timeouts, 5xx and 429 are tried again with backoff, any other answer is final. The
// answer's body is never read (nothing to bound), and redirects are not followed (a redirect
// would carry the body elsewhere).
import { setTimeout as sleep } from 'node:timers/promises';

export interface SendOptions {
  timeoutMs: number;
  retries: number;
  /** Aborted when the delivery's total time is up or the run is killed. */
  signal: AbortSignal;
  userAgent: string;
}

export type SendResult = { ok: true; attempts: number } | { ok: false; attempts: number; error: string };

/** The first wait between attempts; doubled each time (1 s, 2 s, 4 s, …), never past the total limit. */
const FIRST_BACKOFF_MS = 1000;

// Posts `body` to `url`; resolves to how it went, never throws. Error texts may quote the URL: scrub them.
export async function postWithRetries(url: string, body: string, contentType: string, options: SendOptions): Promise<SendResult> {
  let attempts = 0;
  let error = '';
  for (;;) {
    attempts++;
    const verdict = await attempt(url, body, contentType, options);
    if (verdict === 'ok') return { ok: true, attempts };
    error = verdict.error;
    if (!verdict.retry) return { ok: false, attempts, error };
    if (attempts > options.retries) return { ok: false, attempts, error: attempts > 1 ? `${error} (${attempts} attempts)` : error };
    if (options.signal.aborted) return { ok: false, attempts, error: `${error}; ${stopReason(options.signal)}` };
    try {
      await sleep(FIRST_BACKOFF_MS * 2 ** (attempts - 1), undefined, { signal: options.signal });
    } catch {
      return { ok: false, attempts, error: `${error}; ${stopReason(options.signal)}` };
    }
  }
}

async function attempt(url: string, body: string, contentType: string, options: SendOptions): Promise<'ok' | { retry: boolean; error: string }> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  try {
    const response = await fetch(url, {
      method: 'POST',
      body,
      headers: { 'content-type': contentType, 'user-agent': options.userAgent },
      redirect: 'manual',
      signal: AbortSignal.any([timeout, options.signal]),
    });
    await response.body?.cancel().catch(() => {});
    if (response.status >= 200 && response.status < 300) return 'ok';
    const retry = response.status >= 500 || response.status === 429;
    const redirect = response.status >= 300 && response.status < 400 ? ' (a redirect, not followed: use the URL it points to)' : '';
    return { retry, error: `answered HTTP ${response.status}${redirect}` };
  } catch (error) {
    if (timeout.aborted) return { retry: true, error: `no answer within ${options.timeoutMs / 1000} s` };
    if (options.signal.aborted) return { retry: false, error: stopReason(options.signal) };
    return { retry: true, error: networkError(error) };
  }
}

// fetch's "fetch failed" says nothing; its cause says what happened (ECONNREFUSED 127.0.0.1:9).
function networkError(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
  const detail = typeof cause?.code === 'string' ? cause.code : typeof cause?.message === 'string' ? cause.message : String((error as Error).message ?? error);
  return `cannot reach the server: ${detail}`;
}

function stopReason(signal: AbortSignal): string {
  const reason = signal.reason as { name?: string; message?: string } | undefined;
  return reason?.name === 'TimeoutError' ? 'out of time for this notification (totalTimeout)' : `stopped: ${reason?.message ?? 'the run was stopped'}`;
}
