/**
 * Options group: how profiles are delivered and what that may hold. Upload timeout and retries,
 * the bounds on uploads waiting in memory, the bounds on pprof files kept in `outputDir`, and
 * how long `close()` waits for the last window.
 */
import { Type } from '@sinclair/typebox';
import { Duration, durationIn, integerIn, opt, type Given, type OptionProblems, type WithDefaults } from './checks';

export const DeliverySchema = {
  flushTimeout: Type.Optional(opt(Duration, 'a duration up to 1m, e.g. "5s"')),
  uploadTimeout: Type.Optional(opt(Duration, 'a duration from 100ms to 5m, e.g. "10s"')),
  maxUploadRetries: Type.Optional(opt(Type.Number(), 'an integer from 0 to 10')),
  maxPendingUploads: Type.Optional(opt(Type.Number(), 'an integer from 1 to 10000')),
  maxPendingBytes: Type.Optional(opt(Type.Number(), 'an integer number of bytes of at least 65536')),
  maxOutputFiles: Type.Optional(opt(Type.Number(), 'an integer from 1 to 1000000')),
  maxOutputBytes: Type.Optional(opt(Type.Number(), 'an integer number of bytes of at least 1048576')),
};

export const DELIVERY_DEFAULTS = {
  flushTimeout: 5_000,
  uploadTimeout: 10_000,
  maxUploadRetries: 3,
  maxPendingUploads: 50,
  maxPendingBytes: 20 * 1024 * 1024,
  maxOutputFiles: 200,
  maxOutputBytes: 100 * 1024 * 1024,
} as const;

export type DeliveryInput = WithDefaults<Given<typeof DeliverySchema>, typeof DELIVERY_DEFAULTS>;

export interface ResolvedDelivery {
  /** milliseconds */
  flushTimeout: number;
  /** milliseconds */
  uploadTimeout: number;
  maxUploadRetries: number;
  maxPendingUploads: number;
  maxPendingBytes: number;
  maxOutputFiles: number;
  maxOutputBytes: number;
}

export function resolveDelivery(o: DeliveryInput, problems: OptionProblems): ResolvedDelivery {
  return {
    flushTimeout: durationIn(problems, 'flushTimeout', o.flushTimeout, 0, 60_000),
    uploadTimeout: durationIn(problems, 'uploadTimeout', o.uploadTimeout, 100, 300_000),
    maxUploadRetries: integerIn(problems, 'maxUploadRetries', o.maxUploadRetries, 0, 10),
    maxPendingUploads: integerIn(problems, 'maxPendingUploads', o.maxPendingUploads, 1, 10_000),
    maxPendingBytes: integerIn(problems, 'maxPendingBytes', o.maxPendingBytes, 65_536, Number.MAX_SAFE_INTEGER),
    maxOutputFiles: integerIn(problems, 'maxOutputFiles', o.maxOutputFiles, 1, 1_000_000),
    maxOutputBytes: integerIn(problems, 'maxOutputBytes', o.maxOutputBytes, 1024 * 1024, Number.MAX_SAFE_INTEGER),
  };
}
