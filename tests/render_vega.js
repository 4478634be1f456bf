// Render a Vega-Lite spec (stdin) headless with the pinned vega / vega-lite of web/node_modules.
// Prints JSON: {svg, warnings, spec} (spec = the compiled Vega spec). Used by tests/test_plot_templates.py.
const path = require("path");
const modules = path.join(process.argv[2], "node_modules");
const vega = require(path.join(modules, "vega"));
const vegaLite = require(path.join(modules, "vega-lite"));

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", async () => {
  const warnings = [];
  const logger = {
    level() { return this; },
    warn: (...args) => warnings.push(args.join(" ")),
    error: (...args) => warnings.push(args.join(" ")),
    info() {},
    debug() {},
  };
  const spec = vegaLite.compile(JSON.parse(input), { logger }).spec;
  const view = new vega.View(vega.parse(spec), { renderer: "none" });
  view.logger(logger);
  const svg = await view.toSVG();
  process.stdout.write(JSON.stringify({ svg, warnings, spec }));
});
