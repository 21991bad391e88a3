import { parseCsv } from './csv.js';
import { formatReport } from './report.js';

const csv = `task,seconds,cached
build,81.2,no
build,3.4,yes
test,40.9,no
lint,6.1,yes
`;

console.log(formatReport(parseCsv(csv)));
