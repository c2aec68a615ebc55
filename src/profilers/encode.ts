/**
 * The last step of every profile this plugin hands out (push windows, pull captures): stamp its
 * interval, rewrite its frames (source maps, clean paths), gzip it.
 */
import { encode } from '@datadog/pprof';
import type { Profile } from 'pprof-format';
import type { FrameRewriter } from './frames';

export async function encodeProfile(profile: Profile, startMs: number, durationMs: number, frames: FrameRewriter | undefined): Promise<Buffer> {
  // Pyroscope files a profile at time_nanos (and refuses it outside now-1h..now+10m)
  profile.timeNanos = startMs * 1_000_000;
  profile.durationNanos = Math.max(0, durationMs) * 1_000_000;
  await frames?.rewrite(profile);
  return encode(profile);
}
