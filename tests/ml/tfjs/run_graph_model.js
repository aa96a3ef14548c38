// Run a TF.js graph model with TF.js's pure JavaScript CPU backend, for the parity tests and the benchmark.
//
//   node run_graph_model.js MODEL_JSON OUT_DIR INPUT.f32 [INPUT.f32 ...] [--repeat N] [--nanodet-threshold T]
//
// Each input is a raw little-endian float32 tensor of the model's input shape (its signature). For input k, every
// output of the signature is written to OUT_DIR/k-<output index>.f32. OUT_DIR/report.json lists the outputs' names
// and shapes, the milliseconds of N timed runs per input (after one warm-up run; none without --repeat) and the
// process's peak resident memory. With --nanodet-threshold, it also holds each input's NanoDet detections, decoded
// here independently of our Python decoder (the authors' GFL decoding, TF.js's own non-maximum suppression).
'use strict';

const fs = require('fs');
const path = require('path');
const tf = require('@tensorflow/tfjs');

const NANODET = { classes: 80, regMax: 10, strides: [8, 16, 32], iou: 0.6, maxDetections: 100 };

function loadArtifacts(modelJson) {
  const model = JSON.parse(fs.readFileSync(modelJson, 'utf8'));
  const folder = path.dirname(modelJson);
  const weightSpecs = [];
  const shards = [];
  for (const group of model.weightsManifest) {
    weightSpecs.push(...group.weights);
    for (const shard of group.paths) shards.push(fs.readFileSync(path.join(folder, shard)));
  }
  const weights = Buffer.concat(shards);
  return {
    modelTopology: model.modelTopology,
    format: model.format,
    generatedBy: model.generatedBy,
    convertedBy: model.convertedBy,
    signature: model.signature,
    weightSpecs,
    weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
  };
}

function readInput(file, shape) {
  const bytes = fs.readFileSync(file);
  return tf.tensor(new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)),
    shape, 'float32');
}

// One level's candidates: every (cell, class) above the threshold, its box from the expected side distances.
function levelCandidates(scores, logits, stride, cells, inputSize, threshold) {
  const bins = NANODET.regMax + 1;
  const candidates = [];
  for (let point = 0; point < cells * cells; point += 1) {
    const centreX = ((point % cells) + 0.5) * stride;
    const centreY = (Math.floor(point / cells) + 0.5) * stride;
    let sides = null;
    for (let klass = 0; klass < NANODET.classes; klass += 1) {
      const score = scores[point * NANODET.classes + klass];
      if (score > threshold) {
        if (sides === null) {
          sides = [0, 1, 2, 3].map((side) => {
            const start = point * 4 * bins + side * bins;
            const row = Array.from(logits.slice(start, start + bins));
            const top = Math.max(...row);
            const weights = row.map((value) => Math.exp(value - top));
            const total = weights.reduce((sum, value) => sum + value, 0);
            return weights.reduce((sum, value, bin) => sum + (value / total) * bin, 0) * stride;
          });
        }
        const clip = (value) => Math.min(Math.max(value, 0), inputSize);
        candidates.push({
          classIndex: klass,
          score,
          box: [clip(centreX - sides[0]), clip(centreY - sides[1]), clip(centreX + sides[2]), clip(centreY + sides[3])],
        });
      }
    }
  }
  return candidates;
}

async function decodeNanoDet(outputs, inputSize, threshold) {
  let candidates = [];
  for (const stride of NANODET.strides) {
    const cells = Math.ceil(inputSize / stride);
    const find = (channels) => outputs.find((o) => o.shape[1] === cells * cells && o.shape[2] === channels).data;
    candidates = candidates.concat(levelCandidates(find(NANODET.classes), find(4 * (NANODET.regMax + 1)), stride,
      cells, inputSize, threshold));
  }
  const kept = [];
  for (let klass = 0; klass < NANODET.classes; klass += 1) {
    const group = candidates.filter((candidate) => candidate.classIndex === klass);
    if (group.length > 0) {
      const boxes = tf.tensor2d(group.map(({ box }) => [box[1], box[0], box[3], box[2]]));
      const indices = await tf.image.nonMaxSuppressionAsync(boxes, group.map(({ score }) => score),
        NANODET.maxDetections, NANODET.iou);
      for (const index of await indices.data()) kept.push(group[index]);
      tf.dispose([boxes, indices]);
    }
  }
  return kept.sort((a, b) => b.score - a.score).slice(0, NANODET.maxDetections);
}

function parseArguments(argv) {
  const options = { repeat: 0, threshold: null, positional: [] };
  for (let at = 0; at < argv.length; at += 1) {
    if (argv[at] === '--repeat') options.repeat = parseInt(argv[(at += 1)], 10);
    else if (argv[at] === '--nanodet-threshold') options.threshold = parseFloat(argv[(at += 1)]);
    else options.positional.push(argv[at]);
  }
  return options;
}

async function main() {
  const options = parseArguments(process.argv.slice(2));
  const [modelJson, outDir, ...inputs] = options.positional;
  if (!modelJson || !outDir || inputs.length === 0) {
    throw new Error('usage: MODEL_JSON OUT_DIR INPUT.f32 ... [--repeat N] [--nanodet-threshold T]');
  }
  await tf.setBackend('cpu');
  const model = await tf.loadGraphModel(tf.io.fromMemory(loadArtifacts(modelJson)));
  const [inputName, inputSpec] = Object.entries(model.signature.inputs)[0];
  const shape = inputSpec.tensorShape.dim.map((dim) => parseInt(dim.size, 10));
  const outputNames = Object.keys(model.signature.outputs);
  const report = { input: inputName, shape, outputs: [], milliseconds: [], detections: [] };
  fs.mkdirSync(outDir, { recursive: true });
  for (const [index, file] of inputs.entries()) {
    const input = readInput(file, shape);
    const run = () => model.execute({ [inputName]: input }, outputNames);
    const times = [];
    if (options.repeat > 0) tf.dispose(run());
    for (let round = 0; round < Math.max(options.repeat, 1); round += 1) {
      const started = process.hrtime.bigint();
      const tensors = run();
      const values = await Promise.all(tensors.map((tensor) => tensor.data()));
      times.push(Number(process.hrtime.bigint() - started) / 1e6);
      if (round === Math.max(options.repeat, 1) - 1) {
        const outputs = tensors.map((tensor, at) => ({ name: outputNames[at], shape: tensor.shape, data: values[at] }));
        outputs.forEach(({ data }, at) => fs.writeFileSync(path.join(outDir, `${index}-${at}.f32`), Buffer.from(data.buffer)));
        report.outputs = outputs.map(({ name, shape: dims }) => ({ name, shape: dims }));
        if (options.threshold !== null) report.detections.push(await decodeNanoDet(outputs, shape[2], options.threshold));
      }
      tf.dispose(tensors);
    }
    if (options.repeat > 0) report.milliseconds.push(times);
    input.dispose();
  }
  report.peakRssBytes = process.resourceUsage().maxRSS * 1024;
  fs.writeFileSync(path.join(outDir, 'report.json'), JSON.stringify(report));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
