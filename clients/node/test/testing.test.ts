/**
 * @commsgw/client/testing against a real `commsgw dev` (the one COMMSGW_DEV_* name, else one it
 * starts): every verb reaches its control, errors carry the emulator's JSON error body, verify()
 * fails with a message that lists the journal, reset() empties what a test left.
 *
 *   node --test dist/test/testing.test.js
 */
import { strict as assert } from "node:assert";
import { after, before, beforeEach, test } from "node:test";
import { GatewayClient } from "../src";
import { Dev, EmulatorControl, EmulatorError, splitCommand, useDev, VerificationError } from "../src/testing";

let dev: Dev;
let emu: EmulatorControl;

before(async () => {
  dev = await useDev();
  emu = dev.emulator;
});
beforeEach(() => emu.reset());
after(() => dev?.stop());

async function rejects(p: Promise<unknown>): Promise<EmulatorError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof EmulatorError, `not an EmulatorError: ${err}`);
    return err;
  }
  assert.fail("it did not reject");
}

test("a bad body and an unknown call reject with the emulator's JSON error body", async () => {
  const bad = await rejects(emu.request("POST", "/calls", { callbackUri: dev.webhookUrl, callerNmae: "x" }));
  assert.equal(bad.status, 400);
  assert.equal(bad.code, "BadRequest");
  assert.match(bad.message, /callerNmae/);
  const unknown = await rejects(emu.pressTones("0d5b5e6c-5a57-4e4e-9f3e-6f4c1e0a0b0c", "1"));
  assert.equal(unknown.status, 404);
  assert.equal(unknown.code, "itemNotFound");
  assert.deepEqual(Object.keys((unknown.body as { error: object }).error).sort(), ["code", "innerError", "message"]);
});

test("ring, call, calls, setMedia, deliveryFaults, drop and hangUp reach the far end", async () => {
  const callId = await emu.ring({ caller: "+14255550123", answerWindowS: 30 }); // to dev.webhookUrl
  const rung = await emu.call(callId);
  assert.equal(rung.state, "incoming");
  assert.equal(rung.callbackUri, dev.webhookUrl);
  assert.deepEqual((await emu.calls()).map((c) => c.id), [callId]);
  assert.deepEqual(await emu.setMedia(callId, { promptS: 7 }), { promptS: 7 });
  const armed = await emu.deliveryFaults(callId, "duplicate", { match: { changeType: "deleted" } });
  assert.equal(armed.deliveryFaults.length, 1);
  assert.equal((await rejects(emu.pressTones(callId, "1"))).code, "Conflict"); // not answered yet
  await emu.drop(callId);
  assert.equal((await emu.call(callId)).state, "terminated");
  assert.equal((await rejects(emu.hangUp(callId))).status, 404); // ended: nothing to hang up
  const deliveries = await emu.deliveries({ callId });
  assert.ok(deliveries.length >= 1 && deliveries.every((d) => d.callId === callId && d.status === 202), JSON.stringify(deliveries));
});

test("tones, the caller and the far end's hang-up on an answered call; the journal sees the answer", async () => {
  const gw = new GatewayClient(dev.target);
  try {
    const callId = await emu.ring({ callbackUri: dev.webhookUrl });
    await gw.answerCall(callId);
    await eventually(async () => assert.equal((await emu.call(callId)).state, "established"));
    assert.deepEqual(await emu.setCaller(callId, { speechAfterS: 0.1, speechS: 0.2 }), { speechAfterS: 0.1, speechS: 0.2 });
    assert.deepEqual((await emu.pressTones(callId, "9")).sequenceIds, []); // not subscribed: no toneInfo
    await (await gw.subscribeToTone(callId)).wait({ timeoutMs: 10_000 });
    assert.equal((await emu.pressTones(callId, "12")).sequenceIds?.length, 2);
    assert.equal((await emu.pressTones(callId, "3#", { afterS: 0.1, intervalS: 0.1 })).dueS?.length, 2);
    await emu.hangUp(callId);
    assert.equal((await emu.call(callId)).state, "terminated");
    assert.equal((await rejects(emu.hangUp(callId))).code, "itemNotFound");
    const answered = await emu.requests({ callId, method: "POST", path: "/answer$" });
    assert.equal(answered.length, 1);
    assert.equal(answered[0].status, 202);
    assert.deepEqual(await emu.verify({ method: "POST", pathPattern: "/answer$", callId }, 1), answered);
  } finally {
    gw.close();
  }
});

test("verify() that fails says what was expected and lists what the emulator received", async () => {
  const callId = await emu.ring({ callbackUri: dev.webhookUrl });
  const gw = new GatewayClient(dev.target);
  try {
    await gw.answerCall(callId);
  } finally {
    gw.close();
  }
  await assert.rejects(emu.verify({ method: "POST", pathPattern: "/playPrompt$", callId }, 1), (err: unknown) => {
    assert.ok(err instanceof VerificationError);
    assert.equal(err.result.count, 0);
    assert.match(err.message, /expected 1 request\(s\) matching .*playPrompt.*received 0/);
    assert.match(err.message, new RegExp(`POST /v1.0/communications/calls/${callId}/answer -> 202`));
    return true;
  });
  await assert.rejects(emu.verify({ pathPattern: "/answer$" }, { atLeast: 2 }), /at least 2/);
});

test("faults: addFault (one or several), faults, clearFaults; a bad fault is a 400", async () => {
  const ids = await emu.addFault({ pathPattern: "/playPrompt$", status: 429, retryAfter: 1, count: 2 });
  assert.equal(ids.length, 1);
  const two = await emu.addFault({ pathPattern: "/record", status: 503 }, { pathPattern: "/mute$", status: 500 });
  assert.equal(two.length, 2);
  assert.deepEqual((await emu.faults()).map((f) => f.id).sort(), [...ids, ...two].sort());
  await emu.clearFaults();
  assert.deepEqual(await emu.faults(), []);
  const bad = await rejects(emu.addFault({ pathPattern: "x", status: "teapot" as unknown as number }));
  assert.equal(bad.code, "BadRequest");
});

test("reset() empties calls, journal, faults and deliveries", async () => {
  await emu.ring({ callbackUri: dev.webhookUrl });
  await emu.addFault({ pathPattern: "/never$" });
  await emu.reset();
  assert.deepEqual(await emu.calls(), []);
  assert.deepEqual(await emu.requests(), []);
  assert.deepEqual(await emu.faults(), []);
  assert.deepEqual(await emu.deliveries(), []);
});

test("downloadRecording: no such recording is the emulator's error, with its status", async () => {
  const err = await rejects(emu.downloadRecording(`${dev.emulatorUrl}/_emulator/recordings/nope`, "wrong"));
  assert.ok([401, 404].includes(err.status), String(err.status));
});

test("waitForRequests waits for what the bot does, and fails with the journal after its time", async () => {
  const callId = await emu.ring();
  const gw = new GatewayClient(dev.target);
  try {
    const waited = emu.waitForRequests({ method: "POST", pathPattern: "/answer$", callId }, 1, 20_000);
    await gw.answerCall(callId);
    assert.equal((await waited).length, 1);
  } finally {
    gw.close();
  }
  await assert.rejects(
    emu.waitForRequests({ method: "POST", pathPattern: "/playPrompt$", callId }, 1, 200),
    /expected at least 1 request\(s\) matching .*playPrompt.* within 200 ms, the emulator received 0.*\n.*\/answer -> 202/s,
  );
});

test("COMMSGW_COMMAND is split as a shell would", () => {
  assert.deepEqual(splitCommand("python -m commsgw"), ["python", "-m", "commsgw"]);
  assert.deepEqual(splitCommand(`"/my venv/bin/commsgw"  --x 'a "b' c\\ d`), ["/my venv/bin/commsgw", "--x", 'a "b', "c d"]);
  assert.deepEqual(splitCommand(`"q\\"q"`), ['q"q']);
  assert.throws(() => splitCommand(`"open`), /no closing "/);
  assert.throws(() => splitCommand("  "), /empty/);
});

async function eventually(check: () => Promise<void>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
