// ESLint flat config (issue #12). `npm run lint` runs this, `prettier --check` and the lib/ import-cycle check.
// Formatting is Prettier's job: eslint-config-prettier (last below) switches off every rule that would fight it.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';
import globals from 'globals';

export default tseslint.config(
  {
    ignores: ['dist/**', 'ui/dist/**', 'build/**', 'prebuilds/**', 'native/**', 'bench/out/**', '**/fixtures/**'],
  },
  // Unused `eslint-disable` comments are reported, so the ones in lib/ stay honest.
  { linterOptions: { reportUnusedDisableDirectives: 'error' } },

  // TypeScript: typescript-eslint's type-aware recommended set (it catches floating promises, awaiting
  // non-promises, throwing non-errors), typed through the nearest tsconfig.json.
  {
    files: ['**/*.{ts,mts,cts}'],
    extends: [js.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // `_name` marks a parameter or binding kept for its position or documentation.
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
        },
      ],
      // `catch (e) { return Promise.reject(e); }` forwards whatever was thrown: that is correct, not a smell.
      '@typescript-eslint/prefer-promise-reject-errors': [
        'error',
        { allowThrowingUnknown: true, allowThrowingAny: true },
      ],
      // `async` without `await` is deliberate here: backends implement async interfaces (ObjectStore, the index
      // store) and `async` turns a synchronous throw into a rejection, which callers rely on.
      '@typescript-eslint/require-await': 'off',
      // `try { … } catch {}` for best-effort cleanup is an idiom of this codebase.
      'no-empty': ['error', { allowEmptyCatch: true }],
    },
  },
  // Tests and benches read JSON from the CLI, child processes and fixture files: that data is `any` by nature,
  // and asserting on it is the test. Library code keeps the full no-unsafe-* set.
  {
    files: ['test/**/*.{ts,mts,cts}', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  // The CommonJS consumer type test exists to exercise `import x = require('coral-native')`.
  {
    files: ['test/types/**/*.cts'],
    rules: { '@typescript-eslint/no-require-imports': ['error', { allowAsImport: true }] },
  },

  // Plain JavaScript (scripts/, bin/, this file): no type information; scripts/*.js and bin/ are CommonJS.
  {
    files: ['**/*.{js,mjs,cjs}'],
    extends: [js.configs.recommended],
    languageOptions: { globals: { ...globals.node } },
    rules: { 'no-empty': ['error', { allowEmptyCatch: true }] },
  },
  { files: ['**/*.js', '**/*.cjs'], languageOptions: { sourceType: 'commonjs' } },

  // Last: turn off the stylistic rules that Prettier owns.
  prettier,
);
