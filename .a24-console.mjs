import { chromium } from 'playwright-core';
const base = 'http://127.0.0.1:43000';
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const errors = [];
page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') errors.push(`${m.type()}: ${m.text()}`); });
page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
const shots = process.argv.slice(2);
for (const [i, p] of shots.entries()) {
  const res = await page.goto(base + p, { waitUntil: 'networkidle' });
  await page.waitForTimeout(500);
  console.log(p, res?.status(), (await page.title()));
  console.log('  text:', (await page.innerText('body')).replace(/\s+/g, ' ').slice(0, 600));
  await page.screenshot({ path: `/tmp/a24-shot-${i}.png`, fullPage: false });
}
console.log(errors.join('\n'));
await browser.close();
