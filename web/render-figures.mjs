// SVG export of `routescope report --figures DIR`: renders DIR/<id>.vl.json to DIR/<id>.svg with Vega's
// own headless SVG renderer (the same Vega-Lite specs as the HTML report). Usage: node render-figures.mjs DIR ID...
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vega from 'vega';
import * as vl from 'vega-lite';

const [dir, ...ids] = process.argv.slice(2);
if (!dir || ids.length === 0) {
  console.error('usage: node render-figures.mjs DIR ID...');
  process.exit(2);
}
for (const id of ids) {
  const spec = JSON.parse(readFileSync(join(dir, `${id}.vl.json`), 'utf8'));
  const compiled = vl.compile(spec, { logger: vega.logger(vega.Error) }).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none', logLevel: vega.Error });
  writeFileSync(join(dir, `${id}.svg`), await view.toSVG());
  view.finalize();
}
