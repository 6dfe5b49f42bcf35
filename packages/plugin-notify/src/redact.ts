// URLs of pings and webhooks carry their secret in the path (a healthchecks UUID) or the query (a
// token): what is logged or recorded shows the scheme and host only, and any text that might
// repeat a URL (an error's message) is scrubbed of it.

// The part of `url` that is safe to show: `https://hc-ping.com/…`.
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}/…`;
  } catch {
    return '(a URL)';
  }
}

// `text` without any of the secret parts of `urls` (path, query, user info, the whole URL).
export function scrub(text: string, urls: readonly string[]): string {
  let out = text;
  for (const url of urls) {
    const parts = [url];
    try {
      const parsed = new URL(url);
      parts.push(parsed.href, parsed.pathname, parsed.search, parsed.username, parsed.password, decodeURIComponent(parsed.pathname));
      // Each path segment and query value too: a message may quote just the UUID or the token.
      for (const segment of parsed.pathname.split('/')) parts.push(segment, decodeURIComponent(segment));
      for (const value of parsed.searchParams.values()) parts.push(value);
    } catch {
      // Not a URL: the whole string is all there is to hide.
    }
    // Short pieces ("/", "api", "v1") say nothing and would mangle the message.
    for (const part of [...new Set(parts)].filter((p) => p.length >= 8).sort((a, b) => b.length - a.length)) {
      out = out.split(part).join('…');
    }
  }
  return out;
}
