import type { PyroscopeExporterOptions } from './options';
import type { Credentials } from './request';

/**
 * A function that replaces every secret in a text with `***`. Secrets: the token, the password,
 * the whole Authorization value and its base64 part, and user header values long enough to be keys.
 */
export function makeRedactor(options: PyroscopeExporterOptions, credentials: Credentials): (text: string) => string {
  const secrets = new Set<string>();
  const add = (value: string | undefined, minLength = 1): void => {
    if (value !== undefined && value.length >= minLength) secrets.add(value);
  };
  add(options.authToken);
  add(options.basicAuthPassword);
  add(credentials.authorization);
  add(credentials.authorization?.replace(/^\S+\s+/, ''));
  for (const value of Object.values(credentials.userHeaders)) add(value, 8);
  // longest first, so a secret containing another is replaced whole
  const ordered = [...secrets].sort((a, b) => b.length - a.length);
  return (text) => {
    let out = text;
    for (const secret of ordered) out = out.split(secret).join('***');
    return out.replace(/(\/\/)[^/@\s"']*@/g, '$1***@');
  };
}

// ---------------------------------------------------------------------------------------------
// One HTTP attempt
// ---------------------------------------------------------------------------------------------
