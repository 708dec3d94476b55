// Attacker-controlled text shown to a person (status screen, mail bodies, chat messages):
// the one implementation is lib/text/terminal.ts; lib/status and lib/notify import it from here.
export { terminalSafe } from '../text/terminal.js';
