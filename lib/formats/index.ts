/**
 * Checkpoint formats: safetensors, PyTorch zip (.pt/.bin, safe unpickler),
 * NumPy .npy/.npz, ONNX (wire-level), GGUF, the zip container, and layouts
 * for skeleton + segments.
 */
export * from './layout';
export * as safetensors from './safetensors';
export * as pytorch from './pytorch';
export * as numpy from './numpy';
export * as zip from './zip';
export * as pickle from './pickle';
export * as onnx from './onnx';
export * as gguf from './gguf';
export {
  SafetensorsFile,
  readSafetensors,
  writeSafetensors,
  serializeSafetensors,
  type SafetensorsEntry,
} from './safetensors';
export {
  PyTorchFile,
  loadStateDict,
  readPyTorch,
  savePyTorch,
  serializePyTorch,
  type StorageInfo,
  type NamedTorchTensor,
} from './pytorch';
export { readNpy, writeNpy, serializeNpy, readNpz, writeNpz, serializeNpz } from './numpy';
export {
  unpickle,
  PickleWriter,
  PyTuple,
  PyDict,
  PySet,
  PyFloat,
  TorchTensor,
  TorchStorage,
  TorchDType,
  NumpyScalar,
  NumpyArray,
  type PyValue,
} from './pickle';
export { FileSource, BufferSource, type ByteSource } from './io';
export { readOnnxTensors, type OnnxTensor, type OnnxModelInfo } from './onnx';
export { readGgufHeader, GGML_TYPES, type GgufHeader, type GgufTensorInfo, type GgufKeyValue } from './gguf';
