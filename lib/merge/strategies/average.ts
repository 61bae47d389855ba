/** `average`: the mean of ours, theirs and any further heads. */
import { mergeLinear } from '../numeric';
import { defineStrategy } from '../registry';

export const average = defineStrategy({
  name: 'average',
  numeric: true,
  resolve: ({ models }, a) =>
    mergeLinear(
      models,
      models.map(() => 1 / models.length),
      { precision: a.precision },
    ),
});
