/**
 * The first bot's test: the emulator (through @commsgw/client/testing) rings the bot, presses 1
 * while the menu plays, speaks a message, and the test asserts, from the emulator's request
 * journal, the Graph requests the bot caused: answer, playPrompt, cancelMediaProcessing,
 * recordResponse, the recording's download with its token, and the hang-up (DELETE).
 *
 *   node --test dist/examples/first-bot/bot.test.js
 *
 * It uses the `commsgw dev` that COMMSGW_DEV_* name, else starts one (COMMSGW_COMMAND, else
 * `commsgw` on PATH) on free ports.
 */
import { strict as assert } from "node:assert";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { after, before, test } from "node:test";
import { Dev, useDev } from "@commsgw/client/testing";
import { FirstBot, MENU } from "./bot";

let dev: Dev;
let bot: FirstBot;
let outDir: string;

before(async () => {
  dev = await useDev();
  await dev.emulator.reset();
  outDir = mkdtempSync(path.join(tmpdir(), "first-bot-"));
  bot = new FirstBot({ target: dev.target, caFile: dev.caFile, outDir, log: () => undefined });
  await bot.start();
});

after(async () => {
  await bot?.stop();
  await dev?.stop();
  if (outDir) rmSync(outDir, { recursive: true, force: true });
});

test("the bot answers, is barged in on, records the message, downloads it and hangs up", async () => {
  const emu = dev.emulator;
  // The menu plays 30 s: long enough that pressing 1 lands while it plays.
  const callId = await emu.ring({ callbackUri: dev.webhookUrl, caller: "+14255550100", promptS: 30 });
  await emu.setCaller(callId, { speechAfterS: 0.2, speechS: 0.5 });

  // Once Graph has the menu's playPrompt, the caller presses 1 (a condition, not a sleep).
  await emu.waitForRequests({ method: "POST", pathPattern: "/playPrompt$", callId }, 1, 20_000);
  await emu.pressTones(callId, "1");

  const [handled] = await bot.handled(1, 60_000);
  assert.equal(handled.error, undefined, handled.error);
  assert.equal(handled.callId, callId);
  assert.equal(handled.bargedIn, true);

  const calls = `/communications/calls/${callId}`;
  await emu.verify({ method: "POST", pathPattern: `${calls}/answer$`, callId, status: 202 }, 1);
  await emu.verify({ method: "POST", pathPattern: `${calls}/subscribeToTone$`, callId }, 1);
  const [menu] = await emu.verify(
    { method: "POST", pathPattern: `${calls}/playPrompt$`, callId, body: { clientContext: "first-bot-menu" } },
    1,
  );
  assert.deepEqual((menu.body as { prompts: { mediaInfo: { uri: string } }[] }).prompts[0].mediaInfo.uri, MENU);
  await emu.verify(
    { method: "POST", pathPattern: `${calls}/cancelMediaProcessing$`, callId, body: { clientContext: "first-bot-barge-in" } },
    1,
  );
  await emu.verify({ method: "POST", pathPattern: `${calls}/recordResponse$`, callId, body: { maxSilenceTimeoutInSeconds: 1 } }, 1);
  await emu.verify({ method: "DELETE", pathPattern: `${calls}$`, callId }, 1);

  // The journal's order is the bot's: the menu, the barge-in, then the recording.
  const order = (await emu.requests({ callId, method: "POST" })).map((e) => e.path.split("/").pop());
  assert.deepEqual(
    order.filter((p) => ["playPrompt", "cancelMediaProcessing", "recordResponse"].includes(p ?? "")),
    ["playPrompt", "cancelMediaProcessing", "recordResponse"],
  );

  // The recording was downloaded with its access token, and what the bot saved is that WAV.
  const [download] = await emu.verify({ method: "GET", pathPattern: "^/_emulator/recordings/", status: 200 }, 1);
  assert.match(download.headers["authorization"] ?? "", /^Bearer/);
  const wav = readFileSync(handled.recordingFile as string);
  assert.equal(wav.length, handled.recordingBytes);
  assert.equal(wav.subarray(0, 4).toString("latin1"), "RIFF");
});
