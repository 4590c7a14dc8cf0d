/** DOM helpers of the demo chat. */
import type { User } from '../index.ts';

export const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

/** Creates an element; text children only (never HTML from the network). */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: { class?: string; text?: string; title?: string } = {}, ...children: Node[]) {
  const el = document.createElement(tag);
  if (props.class) el.className = props.class;
  if (props.text !== undefined) el.textContent = props.text;
  if (props.title) el.title = props.title;
  el.append(...children);
  return el;
}

/** The letter in a user's avatar. */
export function initial(u: User): string {
  return (u.name.trim()[0] ?? '?').toUpperCase();
}
