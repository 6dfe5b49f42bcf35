// A complete TypeScript plugin: limits rsync's bandwidth, and skips the run ("not now", exit 75)
// during office hours when asked to.
import type { PipelineHooks, Plugin } from '@ssh-r-sync/core';

export interface BandwidthOptions {
  kbps?: number;
  /** Skip runs that start between these hours (local time), e.g. [9, 17]. */
  quietHours?: [number, number];
}

const PLUGIN_NAME = 'bandwidth';

export default function bandwidth(options: BandwidthOptions = {}): Plugin {
  const kbps = options.kbps ?? 1000;
  return {
    name: PLUGIN_NAME,
    apply(hooks: PipelineHooks) {
      hooks.rsyncPre.tapPromise(PLUGIN_NAME, async (command, ctx) => {
        const hour = new Date().getHours();
        const [from, to] = options.quietHours ?? [0, 0];
        if (hour >= from && hour < to) return { skip: true, reason: `quiet hours ${from}-${to}` };
        command.args.push(`--bwlimit=${kbps}`);
        ctx.logger.debug(`${ctx.name}: --bwlimit=${kbps}`);
        return undefined;
      });
    },
  };
}
