/**
 * A small parser for the Prometheus text exposition format, enough for vLLM's `/metrics`:
 * `name{label="value",...} value [timestamp]`, comments skipped, escapes in label values handled.
 */

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

function parseValue(s: string): number {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  const v = Number(s);
  return v;
}

/** Parses samples whose name is in `wanted` (all when undefined); malformed lines are skipped. */
export function parsePrometheusText(text: string, wanted?: ReadonlySet<string>): Sample[] {
  const out: Sample[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    let end = text.indexOf('\n', i);
    if (end === -1) end = n;
    const line = text.slice(i, end).trim();
    i = end + 1;
    if (line === '' || line[0] === '#') continue;
    let p = 0;
    while (p < line.length && line[p] !== '{' && line[p] !== ' ' && line[p] !== '\t') p++;
    const name = line.slice(0, p);
    if (wanted && !wanted.has(name)) continue;
    const labels: Record<string, string> = {};
    if (line[p] === '{') {
      p++;
      let ok = true;
      while (p < line.length && line[p] !== '}') {
        const eq = line.indexOf('=', p);
        if (eq === -1 || line[eq + 1] !== '"') {
          ok = false;
          break;
        }
        const key = line.slice(p, eq).trim();
        let q = eq + 2;
        let val = '';
        while (q < line.length && line[q] !== '"') {
          if (line[q] === '\\' && q + 1 < line.length) {
            const c = line[q + 1];
            val += c === 'n' ? '\n' : c;
            q += 2;
          } else {
            val += line[q++];
          }
        }
        if (q >= line.length) {
          ok = false;
          break;
        }
        labels[key] = val;
        p = q + 1;
        while (p < line.length && (line[p] === ',' || line[p] === ' ')) p++;
      }
      if (!ok || line[p] !== '}') continue;
      p++;
    }
    const rest = line.slice(p).trim().split(/\s+/);
    if (rest.length === 0 || rest[0] === '') continue;
    const value = parseValue(rest[0]);
    if (Number.isNaN(value) && rest[0] !== 'NaN') continue;
    out.push({ name, labels, value });
  }
  return out;
}
