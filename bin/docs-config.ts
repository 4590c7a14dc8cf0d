/**
 * Prints the configuration table for the README, or with `--check`, fails when the README's
 * table differs from the schema in shared/config.ts (CI runs it through the test suite).
 */
import { configTable } from '../shared/config.ts';

process.stdout.write(configTable() + '\n');
