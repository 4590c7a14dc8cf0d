/** The demo's and the dashboard's shared formatting: one time format, a stable colour per user. */
import { describe, expect, it } from 'vitest';
import { formatDateTime, formatTime, userHue } from '../../client/ui/format.ts';

describe('user colour', () => {
  it('is the same for the same user id, every time, whatever the display name', () => {
    expect(userHue('ann')).toBe(userHue('ann'));
    expect(userHue('user-42')).toBe(userHue(`user-${6 * 7}`));
  });

  it('is a hue, and differs between users (spread over the wheel)', () => {
    const hues = Array.from({ length: 200 }, (_, i) => userHue(`user-${i}`));
    for (const h of hues) expect(Number.isInteger(h) && h >= 0 && h < 360, String(h)).toBe(true);
    expect(userHue('ann')).not.toBe(userHue('bob'));
    // 200 users over 360 hues: far more than a few buckets are used, in every third of the wheel.
    expect(new Set(hues).size).toBeGreaterThan(120);
    for (const third of [0, 1, 2]) expect(hues.filter((h) => Math.floor(h / 120) === third).length).toBeGreaterThan(40);
  });
});

describe('time format', () => {
  const ts = '2026-03-04T05:06:07.000Z';

  it('shows hours, minutes and seconds of the local time, for ISO strings, ms and Dates alike', () => {
    const d = new Date(ts);
    const shown = formatTime(ts);
    expect(shown).toMatch(/\d{2}\D\d{2}\D\d{2}/);
    expect(shown).toContain(String(d.getMinutes()).padStart(2, '0'));
    expect(formatTime(d.getTime())).toBe(shown);
    expect(formatTime(d)).toBe(shown);
    expect(formatDateTime(ts)).toContain(String(d.getFullYear()));
  });

  it('shows nothing for something that is not a time', () => {
    expect(formatTime('not a time')).toBe('');
    expect(formatDateTime('')).toBe('');
  });
});
