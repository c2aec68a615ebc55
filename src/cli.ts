#!/usr/bin/env node
/**
 * The package's command line: `npx fastify-continuous-profiling report <dir>`.
 * Only dispatches; each command lives with its module.
 */
import { EXIT_OK, EXIT_USAGE, REPORT_USAGE, runReportCommand, type CliIo } from './report/command';

const USAGE = `Usage: fastify-continuous-profiling <command> [options]

Commands:
  report <dir>   per-route table of the hottest functions, and HTML flame graphs, from the
                 profile files the plugin writes (option outputDir); heap profiles by
                 function, and with --growth what grew between heap snapshots (a leak)

Run 'fastify-continuous-profiling report --help' for the report's options.
`;

export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    (command === undefined ? io.stderr : io.stdout)(`${USAGE}\n${REPORT_USAGE}`);
    return command === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (command === 'report') return runReportCommand(rest, io);
  io.stderr(`error: unknown command '${command}' (expected 'report')\n\n${USAGE}`);
  return EXIT_USAGE;
}

if (require.main === module) {
  const io: CliIo = {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
  };
  main(process.argv.slice(2), io).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
