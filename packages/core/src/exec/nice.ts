// `--nice [prio][:class[.level]]`: CPU and I/O priority of this process, inherited by every
// child (rsync, ssh, hooks). The original only managed the idle class; all three work here.
import { setPriority } from 'node:os';
import { SshRSyncError, UsageError } from '../errors.js';
import { importModule } from '@ssh-r-sync/core/dynamic-import';

const IO_CLASSES = { rt: 1, be: 2, idle: 3 } as const;

export interface NiceSpec {
  priority: number | null;
  ioClass: keyof typeof IO_CLASSES | null;
  ioLevel: number | null;
}

// Parses "10", "-5", "idle", "be.4", "10:idle", "-5:rt.0", ":be.7".
export function parseNice(text: string): NiceSpec {
  const bad = (why: string) => new UsageError(`invalid --nice "${text}": ${why}; expected [PRIO][:CLASS[.LEVEL]], e.g. 10:idle or -5:be.2`);
  const colon = text.indexOf(':');
  const [prioText, ioText] = colon >= 0 ? [text.slice(0, colon), text.slice(colon + 1)] : /^-?\d+$/.test(text) ? [text, ''] : ['', text];
  let priority: number | null = null;
  if (prioText !== '') {
    if (!/^-?\d+$/.test(prioText)) throw bad('the priority must be an integer');
    priority = Number(prioText);
    if (priority < -20 || priority > 19) throw bad('the priority must be in -20..19');
  }
  let ioClass: NiceSpec['ioClass'] = null;
  let ioLevel: number | null = null;
  if (ioText !== '') {
    const [name, level, ...rest] = ioText.split('.');
    if (rest.length || !name || !(name in IO_CLASSES)) throw bad('the I/O class must be rt, be or idle');
    ioClass = name as NiceSpec['ioClass'];
    if (level !== undefined) {
      if (!/^[0-7]$/.test(level)) throw bad('the I/O level must be in 0..7');
      if (ioClass === 'idle') throw bad('the idle class has no level');
      ioLevel = Number(level);
    }
  }
  if (priority === null && ioClass === null) throw bad('nothing to set');
  return { priority, ioClass, ioLevel };
}

// Applies the priorities to this process, so that children inherit them.
export async function applyNice(spec: NiceSpec): Promise<void> {
  if (spec.priority !== null) {
    try {
      setPriority(0, spec.priority);
    } catch (error) {
      throw new SshRSyncError('EUSAGE', `cannot set nice ${spec.priority}: ${(error as Error).message}`, { cause: error });
    }
  }
  if (spec.ioClass !== null) {
    const args = ['-c', String(IO_CLASSES[spec.ioClass]), ...(spec.ioLevel === null ? [] : ['-n', String(spec.ioLevel)]), '-p', String(process.pid)];
    const { execa } = await importModule<typeof import('execa')>('execa');
    const result = await execa('ionice', args, { reject: false, stdin: 'ignore', timeout: 5000 });
    if (result.exitCode !== 0) {
      const why = result.failed && result.exitCode === undefined ? 'ionice not found (util-linux)' : String(result.stderr).trim();
      throw new SshRSyncError('EUSAGE', `cannot set I/O priority ${spec.ioClass}: ${why}`);
    }
  }
}
