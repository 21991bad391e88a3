export interface Row {
  task: string;
  seconds: number;
  cached: boolean;
}

export function parseCsv(text: string): Row[] {
  const [, ...lines] = text.trim().split('\n');
  return lines.map((line) => {
    const [task = '', seconds = '0', cached = 'no'] = line.split(',');
    return { task, seconds: Number(seconds), cached: cached === 'yes' };
  });
}
