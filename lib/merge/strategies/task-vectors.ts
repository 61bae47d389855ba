/** What task-arithmetic, ties and dare share: task vectors against the common ancestor (lib/merge/numeric.ts). */
import type { Tensor } from '../../tensor/tensor';
import { mergeTaskVectors } from '../numeric';
import type { NumericInputs, StrategyArgs } from '../registry';

export function taskVectors(
  op: 'task-arithmetic' | 'ties' | 'dare',
  { base, models }: NumericInputs,
  a: StrategyArgs,
): Promise<Tensor> {
  const { lambda, density, drop, seed, precision } = a;
  return mergeTaskVectors(op, base!, models, { lambda, density, drop, seed, ties: a.dareTies, precision });
}
