/**
 * Options group: what is sampled and how frames are named. The profile types, the CPU sampling
 * rate and heap sampling interval, source maps, and file names relative to `root` (or absolute).
 */
import { Type } from '@sinclair/typebox';
import { integerIn, isDirectoryPath, opt, type Given, type OptionProblems, type WithDefaults } from './checks';

export const ProfilesSchema = {
  profileTypes: Type.Optional(
    opt(
      Type.Object(
        { cpu: Type.Optional(Type.Boolean()), wall: Type.Optional(Type.Boolean()), heap: Type.Optional(Type.Boolean()) },
        { additionalProperties: false },
      ),
      'an object with boolean "cpu", "wall" and "heap"',
    ),
  ),
  sampleRate: Type.Optional(opt(Type.Number(), 'an integer from 1 to 1000 (Hz)')),
  heapSamplingInterval: Type.Optional(opt(Type.Number(), 'an integer number of bytes from 1024 to 67108864')),
  sourceMaps: Type.Optional(opt(Type.Boolean(), 'true or false')),
  root: Type.Optional(opt(Type.String(), 'an application root directory path')),
  absolutePaths: Type.Optional(opt(Type.Boolean(), 'true or false')),
};

export const PROFILES_DEFAULTS = {
  profileTypes: { cpu: true, wall: false, heap: true },
  sampleRate: 100,
  heapSamplingInterval: 524_288,
  sourceMaps: true,
  absolutePaths: false,
} as const;

export type ProfilesInput = WithDefaults<Given<typeof ProfilesSchema>, typeof PROFILES_DEFAULTS>;

export interface ResolvedProfiles {
  profileTypes: { cpu: boolean; wall: boolean; heap: boolean };
  sampleRate: number;
  heapSamplingInterval: number;
  /** frames mapped through their scripts' source maps */
  sourceMaps: boolean;
  /** file names are sent relative to this directory (undefined: found from the entry script) */
  root?: string;
  /** file names are sent as they are */
  absolutePaths: boolean;
}

/** `given` is what the user passed, for the error message (not the object merged with the defaults). */
export function resolveProfiles(o: ProfilesInput, problems: OptionProblems, given: Given<typeof ProfilesSchema>): ResolvedProfiles {
  const { root, profileTypes } = o;
  if (root !== undefined && isDirectoryPath(problems, 'root', root) && o.absolutePaths) {
    problems.add('root', root, 'either root (file names relative to it) or absolutePaths: true (file names unchanged), not both');
  }
  if (!profileTypes.cpu && !profileTypes.wall && !profileTypes.heap) {
    problems.add('profileTypes', given.profileTypes, 'at least one of "cpu", "wall" and "heap" set to true');
  }
  return {
    profileTypes,
    sampleRate: integerIn(problems, 'sampleRate', o.sampleRate, 1, 1000),
    heapSamplingInterval: integerIn(problems, 'heapSamplingInterval', o.heapSamplingInterval, 1024, 64 * 1024 * 1024),
    sourceMaps: o.sourceMaps,
    root,
    absolutePaths: o.absolutePaths,
  };
}
