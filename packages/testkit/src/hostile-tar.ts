/**
 * A hostile tar builder: writes tar archives byte by byte, with the constructs a well-behaved
 * packer never emits or emits only in benign form — pax extended headers (per entry and global),
 * GNU long names and long link names, base-256 numeric fields (negative ones too), declared sizes
 * that differ from the data, raw blocks, and data after the end-of-archive marker. Nothing here
 * checks what it writes: the point is to feed a restore what an attacker would (issue 16).
 *
 * @see https://pubs.opengroup.org/onlinepubs/9799919799/utilities/pax.html (ustar and pax formats)
 */

/** How a numeric header field is written. */
export type TarNumber =
  | number
  | bigint
  /** base-256 (GNU): first byte 0x80 (0xff for negative values), the value big-endian in the rest. */
  | { base256: number | bigint }
  /** The field's bytes as given (padded with NULs, cut at the field's length). */
  | { raw: string };

/** One regular header and its data. */
export interface TarEntryRecord {
  kind: 'entry';
  name: string;
  /** Type flag: a name or the raw flag character. @default 'file' */
  type?: 'file' | 'directory' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo' | (string & {});
  data?: string | Uint8Array;
  /** @default 0o644 (0o755 for directories) */
  mode?: TarNumber;
  /** @default 0 */
  uid?: TarNumber;
  /** @default 0 */
  gid?: TarNumber;
  /** Declared size. @default the length of `data` */
  size?: TarNumber;
  /** Seconds since the epoch. @default 0 */
  mtime?: TarNumber;
  linkname?: string;
  /** ustar prefix field (joined to `name` with `/` by readers). @default '' */
  prefix?: string;
  /** Write this checksum instead of the right one. */
  checksum?: number;
}

/** A pax extended header (`x`), or a global one (`g`), for the next entry (or all later ones). */
export interface TarPaxRecord {
  kind: 'pax';
  attrs: Record<string, string>;
  /** @default false */
  global?: boolean;
  /** The pseudo-entry's name. @default 'PaxHeader' */
  name?: string;
}

/** A GNU long name (`L`) or long link name (`K`) for the next entry. */
export interface TarGnuLongRecord {
  kind: 'gnu-long-name' | 'gnu-long-link';
  value: string;
}

/** Bytes written as they are (e.g. a truncated header, garbage between entries). */
export interface TarRawRecord {
  kind: 'raw';
  bytes: string | Uint8Array;
}

/** The end-of-archive marker: two zero blocks (or `blocks` of them). */
export interface TarEndRecord {
  kind: 'end';
  /** @default 2 */
  blocks?: number;
}

/** One record of {@link hostileTar}. */
export type TarRecord = TarEntryRecord | TarPaxRecord | TarGnuLongRecord | TarRawRecord | TarEndRecord;

const BLOCK = 512;

const TYPE_FLAGS: Record<string, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  directory: '5',
  fifo: '6',
};

const bytesOf = (v: string | Uint8Array): Buffer =>
  typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v.buffer, v.byteOffset, v.byteLength);

function writeString(block: Buffer, offset: number, length: number, value: string): void {
  const b = Buffer.from(value, 'utf8');
  b.copy(block, offset, 0, Math.min(b.byteLength, length));
}

function writeNumber(block: Buffer, offset: number, length: number, value: TarNumber): void {
  if (typeof value === 'object' && 'raw' in value) {
    writeString(block, offset, length, value.raw);
    return;
  }
  if (typeof value === 'object' && 'base256' in value) {
    let v = BigInt(value.base256);
    const negative = v < 0n;
    // Two's complement over the field's bits; the first byte marks base-256.
    if (negative) v = (1n << BigInt(8 * length)) + v;
    for (let i = length - 1; i >= 1; i--) {
      block[offset + i] = Number(v & 0xffn);
      v >>= 8n;
    }
    block[offset] = negative ? 0xff : 0x80;
    return;
  }
  const octal = BigInt(value).toString(8);
  // NUL-terminated octal, zero-padded; a value too long for the field is written cut (hostile).
  writeString(block, offset, length, `${octal.padStart(length - 1, '0')}\0`.slice(-length));
}

function header(fields: {
  name: string;
  mode: TarNumber;
  uid: TarNumber;
  gid: TarNumber;
  size: TarNumber;
  mtime: TarNumber;
  typeflag: string;
  linkname: string;
  prefix: string;
  checksum?: number;
}): Buffer {
  const h = Buffer.alloc(BLOCK);
  writeString(h, 0, 100, fields.name);
  writeNumber(h, 100, 8, fields.mode);
  writeNumber(h, 108, 8, fields.uid);
  writeNumber(h, 116, 8, fields.gid);
  writeNumber(h, 124, 12, fields.size);
  writeNumber(h, 136, 12, fields.mtime);
  h.fill(0x20, 148, 156); // the checksum counts its own field as spaces
  writeString(h, 156, 1, fields.typeflag);
  writeString(h, 157, 100, fields.linkname);
  writeString(h, 257, 6, 'ustar\0');
  writeString(h, 263, 2, '00');
  writeString(h, 345, 155, fields.prefix);
  let sum = 0;
  for (const b of h) sum += b;
  writeString(h, 148, 8, `${(fields.checksum ?? sum).toString(8).padStart(6, '0')}\0 `);
  return h;
}

const padding = (n: number) => Buffer.alloc((BLOCK - (n % BLOCK)) % BLOCK);

/** A pax record `"<len> <key>=<value>\n"`, where `<len>` counts the whole record. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len)
    len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

function pseudoEntry(name: string, typeflag: string, data: Buffer): Buffer[] {
  return [
    header({
      name,
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: data.byteLength,
      mtime: 0,
      typeflag,
      linkname: '',
      prefix: '',
    }),
    data,
    padding(data.byteLength),
  ];
}

/**
 * The archive of `records`, in order. No end-of-archive marker is added: put an `{ kind: 'end' }`
 * record where it belongs (and anything after it, to test trailing data).
 */
export function hostileTar(records: readonly TarRecord[]): Buffer {
  const parts: Buffer[] = [];
  for (const r of records) {
    switch (r.kind) {
      case 'entry': {
        const data = r.data === undefined ? Buffer.alloc(0) : bytesOf(r.data);
        const type = r.type ?? 'file';
        parts.push(
          header({
            name: r.name,
            mode: r.mode ?? (type === 'directory' ? 0o755 : 0o644),
            uid: r.uid ?? 0,
            gid: r.gid ?? 0,
            size: r.size ?? data.byteLength,
            mtime: r.mtime ?? 0,
            typeflag: TYPE_FLAGS[type] ?? type,
            linkname: r.linkname ?? '',
            prefix: r.prefix ?? '',
            ...(r.checksum === undefined ? {} : { checksum: r.checksum }),
          }),
          data,
          padding(data.byteLength),
        );
        break;
      }
      case 'pax': {
        const body = Buffer.from(
          Object.entries(r.attrs)
            .map(([k, v]) => paxRecord(k, v))
            .join(''),
          'utf8',
        );
        parts.push(...pseudoEntry(r.name ?? 'PaxHeader', r.global ? 'g' : 'x', body));
        break;
      }
      case 'gnu-long-name':
      case 'gnu-long-link':
        parts.push(
          ...pseudoEntry(
            '././@LongLink',
            r.kind === 'gnu-long-name' ? 'L' : 'K',
            Buffer.from(`${r.value}\0`, 'utf8'),
          ),
        );
        break;
      case 'raw':
        parts.push(bytesOf(r.bytes));
        break;
      case 'end':
        parts.push(Buffer.alloc(BLOCK * (r.blocks ?? 2)));
        break;
    }
  }
  return Buffer.concat(parts);
}

/** A regular file record. */
export const tarFile = (
  name: string,
  data: string | Uint8Array = 'x',
  extra: Partial<TarEntryRecord> = {},
): TarEntryRecord => ({
  kind: 'entry',
  name,
  type: 'file',
  data,
  ...extra,
});

/** A directory record. */
export const tarDir = (name: string, extra: Partial<TarEntryRecord> = {}): TarEntryRecord => ({
  kind: 'entry',
  name: name.endsWith('/') ? name : `${name}/`,
  type: 'directory',
  ...extra,
});

/** A symlink record. */
export const tarSymlink = (
  name: string,
  linkname: string,
  extra: Partial<TarEntryRecord> = {},
): TarEntryRecord => ({
  kind: 'entry',
  name,
  type: 'symlink',
  linkname,
  mode: 0o777,
  ...extra,
});

/** The end-of-archive marker. */
export const tarEnd = (blocks = 2): TarEndRecord => ({ kind: 'end', blocks });
