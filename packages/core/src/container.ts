import { readFile } from 'node:fs/promises';
import { checksumError, crc32, DEFAULT_REMEDY, verifySection } from './checksum.js';
import { CompressError } from './errors.js';
import { ioError, writeFileAtomic } from './fs.js';

/**
 * The one binary container of compress: student checkpoints, trainer state, memory queues and
 * feature caches are all written in it.
 *
 * ```
 * offset  size  field
 *      0     8  magic "COMPRESS"
 *      8     4  u32 container version (1)
 *     12     4  u32 header size D: offset of the data area, a multiple of 64
 *     16     4  u32 length L of the JSON header
 *     20     4  reserved (0)
 *     24     8  u64 progress: bytes written of the blocked section (0 when the file has none)
 *     32     4  u32 CRC-32 of the written bytes of the blocked section's unfinished block (0: none)
 *     36     4  u32 CRC-32 of the block table's entries of the finished blocks
 *     40    20  reserved (0)
 *     60     4  u32 CRC-32 of the header: bytes 0–59 and 64 … D
 *     64     L  JSON header (UTF-8): { kind, version, …the format's fields, sections: [...] }
 *   64+L     …  zero padding up to D
 *      D     …  the sections, each at a multiple of 64 bytes, zero padding between them
 * ```
 * A section entry is `{ name, offset, bytes, dtype?, shape?, crc }` (`offset` from D, `crc` the CRC-32
 * of its bytes) or, for a large section written incrementally and checked lazily,
 * `{ name, offset, bytes, dtype?, shape?, blockBytes, table }`: a CRC-32 per block of `blockBytes`
 * bytes in a table of u32 (little-endian) at `table` (from D), whose own checksum, with the
 * progress of the writes, lives in bytes 24–59 so that a writer can commit progress with one small
 * write of bytes 24–63 ({@link setContainerProgress}) after writing rows and table entries.
 * At most one section of a file is blocked.
 */
export const CONTAINER_MAGIC = 'COMPRESS';
export const CONTAINER_VERSION = 1;
/** Alignment of the data area and of every section (SIMD loads, mmap). */
export const CONTAINER_ALIGN = 64;
/** Size of the fixed part of the header. */
export const CONTAINER_PREFIX_BYTES = 64;
/** Offset of the bytes a writer rewrites to commit progress (through the header's checksum). */
export const CONTAINER_PROGRESS_OFFSET = 24;
const HEADER_CRC_OFFSET = 60;
/** The largest header accepted (a damaged size field must not make a reader allocate gigabytes). */
const MAX_HEADER = 64 * 2 ** 20;

export type SectionDtype = 'float32' | 'float16' | 'int32' | 'uint32' | 'uint8';

/** A section as the JSON header describes it. */
export interface ContainerSection {
  name: string;
  /** Byte offset from the data area (a multiple of 64). */
  offset: number;
  bytes: number;
  dtype?: SectionDtype;
  shape?: number[];
  /** CRC-32 of the section's bytes (whole sections). */
  crc?: number;
  /** Blocked sections: bytes per checksum block. */
  blockBytes?: number;
  /** Blocked sections: offset from the data area of the table of the blocks' CRC-32s. */
  table?: number;
}

export interface ContainerHeader {
  kind: string;
  version: number;
  sections: ContainerSection[];
  [field: string]: unknown;
}

/** The progress of the blocked section's writes (bytes 24–39). */
export interface ContainerProgress {
  bytes: number;
  partialCrc: number;
  tableCrc: number;
}

/** A section to write. */
export interface SectionInput {
  name: string;
  data: ArrayBufferView;
  dtype?: SectionDtype;
  shape?: readonly number[];
}

/** A blocked section to lay out (its bytes are written later, by the caller). */
export interface BlockedSectionInput {
  name: string;
  bytes: number;
  blockBytes: number;
  dtype?: SectionDtype;
  shape?: readonly number[];
}

/** What a reader expects of a container; `what` names the format in messages. */
export interface ContainerExpectation {
  kind: string;
  /** The format versions this reader reads. */
  versions: readonly number[];
  /** The format's name in messages, e.g. "compress student checkpoint". */
  what: string;
  /** The package that reads it, in messages about versions. */
  reader?: string;
  /** What to do with a damaged file. */
  remedy?: string;
}

export function alignContainer(n: number, align = CONTAINER_ALIGN): number {
  return Math.ceil(n / align) * align;
}

function bytesOf(view: ArrayBufferView): Uint8Array {
  return view instanceof Uint8Array ? view : new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** Number of blocks of a blocked section. */
export function containerBlockCount(section: Pick<ContainerSection, 'bytes' | 'blockBytes'>): number {
  return section.blockBytes ? Math.ceil(section.bytes / section.blockBytes) : 0;
}

function headerChecksum(region: Uint8Array): number {
  return crc32(region.subarray(HEADER_CRC_OFFSET + 4), crc32(region.subarray(0, HEADER_CRC_OFFSET)));
}

/** Encodes the header region (prefix, JSON, padding to a multiple of `align`), progress included. */
function encodeHeaderRegion(header: ContainerHeader, progress: ContainerProgress, align: number): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const size = alignContainer(CONTAINER_PREFIX_BYTES + json.length, align);
  const region = new Uint8Array(size);
  const view = new DataView(region.buffer);
  region.set(new TextEncoder().encode(CONTAINER_MAGIC), 0);
  view.setUint32(8, CONTAINER_VERSION, true);
  view.setUint32(12, size, true);
  view.setUint32(16, json.length, true);
  region.set(json, CONTAINER_PREFIX_BYTES);
  setContainerProgress(region, progress);
  return region;
}

/**
 * Writes `progress` into a header region and updates its checksum; returns its bytes 24–63, to be
 * written at {@link CONTAINER_PROGRESS_OFFSET} in one write.
 */
export function setContainerProgress(region: Uint8Array, progress: ContainerProgress): Uint8Array {
  const view = new DataView(region.buffer, region.byteOffset, region.byteLength);
  view.setBigUint64(24, BigInt(progress.bytes), true);
  view.setUint32(32, progress.partialCrc >>> 0, true);
  view.setUint32(36, progress.tableCrc >>> 0, true);
  view.setUint32(HEADER_CRC_OFFSET, headerChecksum(region), true);
  return region.subarray(CONTAINER_PROGRESS_OFFSET, CONTAINER_PREFIX_BYTES);
}

/**
 * Encodes a container of whole sections, every one with its CRC-32, as the chunks of the file
 * (header region, then each section and its padding). The same input gives the same bytes.
 */
export function encodeContainer(
  kind: string,
  version: number,
  fields: Record<string, unknown>,
  sections: readonly SectionInput[],
): Uint8Array[] {
  const entries: ContainerSection[] = [];
  const chunks: Uint8Array[] = [];
  let offset = 0;
  let end = 0;
  const names = new Set<string>();
  for (const s of sections) {
    if (names.has(s.name)) {
      throw new CompressError('INVALID_ARGUMENT', `encodeContainer: two sections are named '${s.name}'`, {
        input: 'sections',
      });
    }
    names.add(s.name);
    const data = bytesOf(s.data);
    const entry: ContainerSection = { name: s.name, offset, bytes: data.byteLength };
    if (s.dtype !== undefined) entry.dtype = s.dtype;
    if (s.shape !== undefined) entry.shape = [...s.shape];
    entry.crc = crc32(data);
    entries.push(entry);
    // zero padding after the previous section (none after the last)
    if (offset > end) chunks.push(new Uint8Array(offset - end));
    chunks.push(data);
    end = offset + data.byteLength;
    offset = alignContainer(end);
  }
  const header: ContainerHeader = { kind, version, ...fields, sections: entries };
  header.kind = kind;
  header.version = version;
  return [encodeHeaderRegion(header, { bytes: 0, partialCrc: 0, tableCrc: 0 }, CONTAINER_ALIGN), ...chunks];
}

/** {@link encodeContainer} as one array. */
export function encodeContainerBytes(
  kind: string,
  version: number,
  fields: Record<string, unknown>,
  sections: readonly SectionInput[],
): Uint8Array {
  const chunks = encodeContainer(kind, version, fields, sections);
  const out = new Uint8Array(chunks.reduce((a, c) => a + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/** Writes a container of whole sections atomically (temporary file, flush, rename). */
export async function writeContainer(
  path: string,
  kind: string,
  version: number,
  fields: Record<string, unknown>,
  sections: readonly SectionInput[],
): Promise<void> {
  await writeFileAtomic(path, encodeContainer(kind, version, fields, sections));
}

/**
 * Lays out a container whose one blocked section is written later, piece by piece: returns the
 * header region (progress 0; commit progress with {@link setContainerProgress}), the section's
 * entry (with `offset` and `table` from the data area) and the size of the finished file.
 * `headerAlign` (a multiple of 64) rounds the header region up, e.g. to a page.
 */
export function layoutBlockedContainer(
  kind: string,
  version: number,
  fields: Record<string, unknown>,
  section: BlockedSectionInput,
  headerAlign = CONTAINER_ALIGN,
): { region: Uint8Array; section: ContainerSection; fileBytes: number } {
  const entry: ContainerSection = {
    name: section.name,
    offset: 0,
    bytes: section.bytes,
    ...(section.dtype === undefined ? {} : { dtype: section.dtype }),
    ...(section.shape === undefined ? {} : { shape: [...section.shape] }),
    blockBytes: section.blockBytes,
    table: alignContainer(section.bytes),
  };
  const header: ContainerHeader = { kind, version, ...fields, sections: [entry] };
  header.kind = kind;
  header.version = version;
  const region = encodeHeaderRegion(header, { bytes: 0, partialCrc: 0, tableCrc: 0 }, headerAlign);
  return { region, section: entry, fileBytes: region.length + entry.table! + 4 * containerBlockCount(entry) };
}

function corrupt(file: string, why: string): CompressError {
  return new CompressError('CORRUPT_INPUT', `${file}: ${why}`, { input: file });
}

/** Whether `bytes` start with the container's magic. */
export function isContainer(bytes: Uint8Array): boolean {
  if (bytes.length < CONTAINER_MAGIC.length) return false;
  for (let i = 0; i < CONTAINER_MAGIC.length; i++)
    if (bytes[i] !== CONTAINER_MAGIC.charCodeAt(i)) return false;
  return true;
}

/**
 * From the first 64 bytes of a file: checks the magic and container version and returns the size
 * of the header region (to read before {@link decodeContainerHeader}).
 */
export function containerHeaderSize(prefix: Uint8Array, file: string, expect: ContainerExpectation): number {
  if (!isContainer(prefix)) {
    const found = new TextDecoder('latin1').decode(prefix.subarray(0, CONTAINER_MAGIC.length));
    throw corrupt(
      file,
      `not a ${expect.what} (expected the magic "${CONTAINER_MAGIC}", found ${JSON.stringify(found)})`,
    );
  }
  const remedy = expect.remedy ?? DEFAULT_REMEDY;
  if (prefix.length < CONTAINER_PREFIX_BYTES)
    throw corrupt(file, `the file ends within section 'header': the file is truncated or damaged; ${remedy}`);
  const view = new DataView(prefix.buffer, prefix.byteOffset, prefix.byteLength);
  const version = view.getUint32(8, true);
  if (version !== CONTAINER_VERSION) {
    throw new CompressError(
      'UNSUPPORTED',
      `${file}: compress container version ${version}, this version of @compress/core reads version ${CONTAINER_VERSION} (or the file is damaged)`,
      { input: file },
    );
  }
  const size = view.getUint32(12, true);
  const jsonLength = view.getUint32(16, true);
  if (size % CONTAINER_ALIGN !== 0 || size > MAX_HEADER || CONTAINER_PREFIX_BYTES + jsonLength > size) {
    throw corrupt(
      file,
      `section 'header' is damaged (header size ${size}, JSON length ${jsonLength}): the file is damaged; ${remedy}`,
    );
  }
  return size;
}

/**
 * Decodes and checks a header region (all of bytes 0 … D): its checksum, then kind and version.
 * Throws CORRUPT_INPUT naming the file ('header') on a mismatch, MISMATCH for another kind,
 * UNSUPPORTED for a version not in `expect.versions`.
 */
export function decodeContainerHeader(
  region: Uint8Array,
  file: string,
  expect: ContainerExpectation,
): { header: ContainerHeader; progress: ContainerProgress; headerBytes: number } {
  const size = containerHeaderSize(region, file, expect);
  const remedy = expect.remedy ?? DEFAULT_REMEDY;
  if (region.length < size)
    throw corrupt(file, `the file ends within section 'header': the file is truncated or damaged; ${remedy}`);
  const whole = region.subarray(0, size);
  const view = new DataView(whole.buffer, whole.byteOffset, whole.byteLength);
  verifySection(file, 'header', headerChecksum(whole), view.getUint32(HEADER_CRC_OFFSET, true), remedy);
  const jsonLength = view.getUint32(16, true);
  let header: ContainerHeader;
  try {
    header = JSON.parse(
      new TextDecoder().decode(whole.subarray(CONTAINER_PREFIX_BYTES, CONTAINER_PREFIX_BYTES + jsonLength)),
    ) as ContainerHeader;
  } catch (error) {
    throw new CompressError('CORRUPT_INPUT', `${file}: the container header is not valid JSON`, {
      input: file,
      cause: error,
    });
  }
  if (header?.kind !== expect.kind) {
    throw new CompressError(
      'MISMATCH',
      `${file}: expected a ${expect.what} (${expect.kind}), found ${typeof header?.kind === 'string' ? header.kind : 'a container without a kind'}`,
      { input: file },
    );
  }
  if (!expect.versions.includes(header.version)) {
    throw new CompressError(
      'UNSUPPORTED',
      `${file}: a ${expect.what} of version ${String(header.version)}, this version of ${expect.reader ?? 'compress'} reads version${expect.versions.length > 1 ? 's' : ''} ${expect.versions.join(', ')}`,
      { input: file },
    );
  }
  if (!Array.isArray(header.sections)) throw corrupt(file, 'the container header lists no sections');
  const progress: ContainerProgress = {
    bytes: Number(view.getBigUint64(24, true)),
    partialCrc: view.getUint32(32, true),
    tableCrc: view.getUint32(36, true),
  };
  return { header, progress, headerBytes: size };
}

/** A decoded container: its header and its sections' bytes (all checked). */
export interface DecodedContainer {
  header: ContainerHeader;
  /** The bytes of a section (a view into the file's bytes), or undefined when there is none. */
  section(name: string): Uint8Array | undefined;
  /** The sections in file order, with their bytes. */
  sections: { entry: ContainerSection; bytes: Uint8Array }[];
}

/**
 * Decodes a whole container held in memory, checking every checksum: the header's, every whole
 * section's and every block (and the block table) of a blocked section. A mismatch is CORRUPT_INPUT:
 * "`file`: section 'name' checksum mismatch (stored 0x…, computed 0x…): the file is damaged; remedy";
 * a file cut short names the section it ends in.
 */
export function decodeContainer(
  bytes: Uint8Array,
  file: string,
  expect: ContainerExpectation,
): DecodedContainer {
  const remedy = expect.remedy ?? DEFAULT_REMEDY;
  const { header, progress, headerBytes } = decodeContainerHeader(bytes, file, expect);
  const cutShort = (name: string) =>
    corrupt(file, `the file ends within section '${name}': the file is truncated or damaged; ${remedy}`);
  const sections: { entry: ContainerSection; bytes: Uint8Array }[] = [];
  let end = headerBytes;
  for (const entry of header.sections) {
    const from = headerBytes + entry.offset;
    if (!(entry.offset % CONTAINER_ALIGN === 0 && entry.bytes >= 0))
      throw corrupt(file, `section '${entry.name}' is not at a multiple of ${CONTAINER_ALIGN} bytes`);
    if (from + entry.bytes > bytes.length) throw cutShort(entry.name);
    const data = bytes.subarray(from, from + entry.bytes);
    end = Math.max(end, from + entry.bytes);
    if (entry.blockBytes) {
      const blocks = containerBlockCount(entry);
      const tableAt = headerBytes + (entry.table ?? 0);
      if (tableAt + 4 * blocks > bytes.length) throw cutShort(`${entry.name} checksum table`);
      end = Math.max(end, tableAt + 4 * blocks);
      if (progress.bytes !== entry.bytes) {
        throw corrupt(
          file,
          `section '${entry.name}' is unfinished (${progress.bytes} of ${entry.bytes} bytes written)`,
        );
      }
      const tableBytes = bytes.subarray(tableAt, tableAt + 4 * blocks);
      verifySection(file, `${entry.name} checksum table`, tableBytes, progress.tableCrc, remedy);
      const table = new DataView(tableBytes.buffer, tableBytes.byteOffset, tableBytes.byteLength);
      for (let b = 0; b < blocks; b++) {
        const first = b * entry.blockBytes;
        const block = data.subarray(first, Math.min(entry.bytes, first + entry.blockBytes));
        const computed = crc32(block);
        const stored = table.getUint32(4 * b, true);
        if (computed !== stored)
          throw checksumError(file, `${entry.name} block ${b}`, stored, computed, remedy);
      }
    } else {
      verifySection(file, entry.name, data, typeof entry.crc === 'number' ? entry.crc : Number.NaN, remedy);
    }
    sections.push({ entry, bytes: data });
  }
  if (end !== bytes.length) {
    throw corrupt(file, `expected ${end} bytes, found ${bytes.length}: the file is damaged; ${remedy}`);
  }
  const byName = new Map(sections.map((s) => [s.entry.name, s.bytes]));
  return { header, section: (name) => byName.get(name), sections };
}

/** Reads and decodes a whole container file ({@link decodeContainer}). */
export async function readContainer(path: string, expect: ContainerExpectation): Promise<DecodedContainer> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (error) {
    throw ioError(error, path, 'read');
  }
  return decodeContainer(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), path, expect);
}

/**
 * A section's bytes as a fresh Float32Array (copied out of the file's buffer, which may be Node's
 * shared pool or unaligned).
 */
export function float32Section(bytes: Uint8Array): Float32Array {
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}
