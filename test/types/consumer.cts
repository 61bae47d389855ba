// Type-checked (not run): the CommonJS consumer's view.
import coral = require('coral-native');

const t: coral.Tensor = coral.tensor('U8', [3], new Uint8Array(3));
const id: Promise<string> = coral.contentId(t);
// @ts-expect-error dtype names are checked
coral.tensor('F33', [1], new Uint8Array(4));
void id;
