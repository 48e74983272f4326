// typescript-eslint's recommended type-aware rules over every TypeScript file we ship or test.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.tap/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-non-null-assertion': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true }],
    },
  },
  {
    // Plain-JS examples and config run on Node: its globals are defined.
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: { globals: globals.node },
  },
  {
    // The explorer's script runs in the browser (served as-is by routes/ui.ts).
    files: ['ui/**/*.js'],
    languageOptions: { globals: globals.browser },
  },
  {
    // Issue 17: the core is the emulator alone, testable and reusable without HTTP. It may not
    // reach zod, fastify or the wire (schemas/), nor the routes or the service built on it.
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            { name: 'zod', message: 'src/core has no wire types: validate in schemas/, convert in src/service/.' },
          ],
          patterns: [
            // fastify* covers fastify, fastify-plugin and fastify-type-provider-zod.
            { group: ['zod/*', 'fastify*', '@fastify/*'], message: 'src/core knows no HTTP or wire types: put it in src/service/ or routes/.' },
            { group: ['**/schemas', '**/schemas/**'], message: 'src/core takes core types: convert wire input in src/service/ (e.g. config-wire.ts, present.ts).' },
            { group: ['**/routes', '**/routes/**', '**/service', '**/service/**'], message: 'src/core is below the service: the service imports the core, never the reverse.' },
          ],
        },
      ],
    },
  },
  {
    // Routes are thin plugins over the service (src/service/): they run DMA calls through a
    // Session, never the core's machinery. They may use the core's leaf contracts (errors,
    // the observer interface, the name tuples) and its pure IOVA-picture computation.
    files: ['routes/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/src/core/**', '!**/src/core/errors.js', '!**/src/core/observer.js', '!**/src/core/constants.js', '!**/src/core/iova-picture.js'],
              message: 'routes go through src/service/ (a Session, the store, present.ts), not the core.',
            },
          ],
        },
      ],
    },
  },
);
