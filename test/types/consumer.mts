// Type-checked (not run) by test/types/types.test.ts: the public surface as an
// ESM consumer sees it through package.json "exports".
import { contentId, tensor, CoralError, InvalidArgumentError, type Tensor, type DType } from 'coral-native';
import cjsDefault from 'coral-native';

const t: Tensor = tensor('F32', [2], new Float32Array([1, 2]));
const d: DType = t.dtype;
const p: Promise<string> = contentId(t);
const code: string = InvalidArgumentError.code;
const isErr: boolean = new CoralError('x') instanceof Error;
const same: typeof contentId = cjsDefault.contentId;
void [d, p, code, isErr, same];
