/** `weighted`: alpha * ours + (1 - alpha) * theirs (needs --alpha). */
import { mergeLinear } from '../numeric';
import { defineStrategy } from '../registry';

export const weighted = defineStrategy({
  name: 'weighted',
  numeric: true,
  requires: { param: 'alpha', expected: 'number in [0, 1] (weighted needs --alpha)' },
  twoHeadsOnly: 'no further heads (weighted combines exactly ours and theirs)',
  resolve: ({ models }, a) => mergeLinear(models, [a.alpha, 1 - a.alpha], { precision: a.precision }),
});
