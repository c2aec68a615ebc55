'use strict';
/**
 * greet's `/ping` exactly as the example app has it (route + response schema, handler, PingLogic
 * with simulateCPULoad), compiled once per benchmark run into a temporary folder: the servers
 * then load plain JavaScript, without TypeScript in their memory or their startup.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const GREET_INTERNAL = path.resolve(__dirname, '..', 'example-app', 'internal');
/** The folders `/ping` needs; `config/` is only imported for its types. */
const FOLDERS = ['handler', 'logic', 'svc', 'types'];

/** Returns the compiled `handler/routes.js` (exports `registerHandlers(app, svcCtx)`) and a cleanup. */
function compileGreetHandlers() {
  const ts = require('typescript');
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-greet-'));
  for (const folder of FOLDERS) {
    fs.mkdirSync(path.join(outDir, folder));
    for (const file of fs.readdirSync(path.join(GREET_INTERNAL, folder)).filter((f) => f.endsWith('.ts'))) {
      const source = fs.readFileSync(path.join(GREET_INTERNAL, folder, file), 'utf8');
      const { outputText } = ts.transpileModule(source, {
        compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
        fileName: file,
      });
      fs.writeFileSync(path.join(outDir, folder, file.replace(/\.ts$/, '.js')), outputText);
    }
  }
  return {
    routesJs: path.join(outDir, 'handler', 'routes.js'),
    cleanup: () => fs.rmSync(outDir, { recursive: true, force: true }),
  };
}

module.exports = { compileGreetHandlers };
