/**
 * The checkpoint layout types (docs/architecture.md "Checkpoint layouts"),
 * in their own module so each format's scanner can build a layout without
 * importing the dispatcher in layout.ts.
 */
import type { DType } from '../tensor/dtype';

export type CheckpointFormat = 'safetensors' | 'pytorch' | 'npy' | 'npz' | 'onnx' | 'onnx-external' | 'gguf' | 'raw';

export interface Segment {
  offset: number;
  length: number;
  dtype: DType;
  shape: number[];
  key: string;
  /** Set when the bytes are compressed in the file (deflated zip member). */
  compression?: 'deflate';
  /** 'npy' when the (inflated) bytes are a whole .npy file rather than raw elements. */
  container?: 'npy';
}

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Index into layout.segments. */
  segment: number;
  /** First element, in elements of `dtype`, from the start of the segment's data. */
  elementOffset: number;
  /** Element strides; null = contiguous (row-major) from elementOffset. */
  strides: number[] | null;
}

export interface CheckpointLayout {
  format: CheckpointFormat;
  fileSize: number;
  segments: Segment[];
  tensors: TensorInfo[];
  metadata?: Record<string, string>;
}
