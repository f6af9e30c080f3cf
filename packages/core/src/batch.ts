import { CompressError } from './errors.js';
import type { FloatImage, ImageBatch, RawImage } from './types.js';

/** An image with its dataset index and label, ready to batch. */
export interface BatchItem {
  index: number;
  image: RawImage | FloatImage;
  label?: number;
}

/**
 * Stacks same-shaped images into an NHWC {@link ImageBatch}. 8-bit images are scaled to [0, 1]
 * (as torchvision's `ToTensor`); float images are copied as they are.
 */
export function collate(items: readonly BatchItem[]): ImageBatch {
  if (items.length === 0)
    throw new CompressError('INVALID_ARGUMENT', 'collate: cannot batch zero images', { input: 'items' });
  const first = items[0]!.image;
  const { height: h, width: w, channels: c } = first;
  const per = h * w * c;
  const images = new Float32Array(items.length * per);
  const indices = new Int32Array(items.length);
  const labels = new Int32Array(items.length);
  let hasLabels = true;
  items.forEach((item, b) => {
    const { image } = item;
    if (image.height !== h || image.width !== w || image.channels !== c) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `collate: image of dataset index ${item.index} is ${image.height}×${image.width}×${image.channels}, expected ${h}×${w}×${c} like the first image of the batch (resize or crop to one size first)`,
        { input: `index ${item.index}` },
      );
    }
    if (image.data.length !== per) {
      throw new CompressError(
        'SHAPE_MISMATCH',
        `collate: image of dataset index ${item.index} has ${image.data.length} values, expected ${per}`,
        { input: `index ${item.index}` },
      );
    }
    const o = b * per;
    if (image.data instanceof Uint8Array) {
      const src = image.data;
      for (let i = 0; i < per; i++) images[o + i] = src[i]! / 255;
    } else {
      images.set(image.data, o);
    }
    indices[b] = item.index;
    if (item.label === undefined) hasLabels = false;
    else labels[b] = item.label;
  });
  return hasLabels
    ? { indices, images, shape: [items.length, h, w, c], labels }
    : { indices, images, shape: [items.length, h, w, c] };
}
