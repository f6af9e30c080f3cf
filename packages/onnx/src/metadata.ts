/**
 * Reads the `metadata_props` of an ONNX ModelProto (field 14: repeated StringStringEntryProto
 * { key = 1, value = 2 }) from the model's bytes: onnxruntime-node's session does not expose them.
 * Only the top level of the message is walked; the graph (field 7) is skipped by its length, so a
 * large model costs nothing to scan. Malformed bytes give what was read so far (onnxruntime has
 * already validated the model when this runs).
 */
export function readOnnxMetadata(bytes: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  const decoder = new TextDecoder();
  try {
    forEachField(bytes, 0, bytes.length, (field, wire, start, end) => {
      if (field !== 14 || wire !== 2) return;
      let key = '';
      let value = '';
      forEachField(bytes, start, end, (f, w, s, e) => {
        if (w !== 2) return;
        if (f === 1) key = decoder.decode(bytes.subarray(s, e));
        else if (f === 2) value = decoder.decode(bytes.subarray(s, e));
      });
      out[key] = value;
    });
  } catch {
    // keep what was read
  }
  return out;
}

/** Calls `visit` for every field of the message in `bytes[start, end)`; [s, e) is a length-delimited payload. */
function forEachField(
  bytes: Uint8Array,
  start: number,
  end: number,
  visit: (field: number, wire: number, s: number, e: number) => void,
): void {
  let pos = start;
  const varint = (): number => {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= end) throw new Error('truncated varint');
      const b = bytes[pos++]!;
      result += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return result;
      scale *= 128;
    }
    throw new Error('varint too long');
  };
  while (pos < end) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    switch (wire) {
      case 0:
        varint();
        visit(field, wire, pos, pos);
        break;
      case 1:
        pos += 8;
        break;
      case 2: {
        const length = varint();
        const s = pos;
        pos += length;
        if (pos > end) throw new Error('truncated field');
        visit(field, wire, s, pos);
        break;
      }
      case 5:
        pos += 4;
        break;
      default:
        throw new Error(`unsupported wire type ${wire}`);
    }
  }
}
