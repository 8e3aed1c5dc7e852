"""Cheaper decoders for a sample pool, built from a bundle's head and decoder graphs by graph
surgery, for scripts/pool-decode.ts to time against the shipped graphs (issue 12, item 1;
figures in docs/sampling.md, "Pool decoding"). Not used by the server: none of them won.

    cd models && /usr/bin/python3 -m calmtk.pool_variants bundles/calm-k4 ../tmp/pool-variants

Writes:
- decoder_body.onnx: the decoder without its vocabulary projection and argmax (outputs the
  normalised hidden states): the floor of any projection shortcut;
- decoder_rR_mM.onnx: a rank-R approximation of the tied projection (from its SVD) picks M
  candidates per position (TopK), which are then scored exactly; the argmax among them;
- decoder_int8.onnx, head_int8.onnx: every MatMul with a constant 2-D weight replaced by
  onnxruntime's DynamicQuantizeMatMul (int8 weights, per output column scales; activations
  quantised per call).
"""
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _projection(graph):
    """The decoder's last MatMul (hidden @ E^T, a [d, V] initializer) and its weight."""
    inits = {i.name: i for i in graph.initializer}
    argmax = next(n for n in graph.node if n.op_type == 'ArgMax')
    proj = next(n for n in graph.node if argmax.input[0] in n.output)
    assert proj.op_type == 'MatMul' and proj.input[1] in inits, 'decoder ends in MatMul -> ArgMax'
    return proj, argmax, numpy_helper.to_array(inits[proj.input[1]]).astype(np.float32)


def body(src):
    """The decoder cut before its projection; returns (model, name of the hidden states, E^T)."""
    model = onnx.load(src)
    g = model.graph
    proj, argmax, w = _projection(g)
    hidden = proj.input[0]
    kept = [n for n in g.node if n is not proj and n is not argmax]
    del g.node[:]
    g.node.extend(kept)
    kept_init = [i for i in g.initializer if i.name != proj.input[1]]
    del g.initializer[:]
    g.initializer.extend(kept_init)
    del g.output[:]
    g.output.append(helper.make_tensor_value_info(hidden, TensorProto.FLOAT, ['n', 'k', w.shape[0]]))
    return model, hidden, w


def shortlist(src, rank, m):
    model, hidden, w = body(src)
    g = model.graph
    e = w.T.astype(np.float64)  # [V, d]
    u, s, vt = np.linalg.svd(e, full_matrices=False)
    g.initializer.extend([
        numpy_helper.from_array(vt[:rank].T.astype(np.float32), 'lr_in'),  # [d, r]
        numpy_helper.from_array((u[:, :rank] * s[:rank]).T.astype(np.float32), 'lr_out'),  # [r, V]
        numpy_helper.from_array(w.T.copy(), 'embed'),  # [V, d]
        numpy_helper.from_array(np.array([m], np.int64), 'lr_m'),
        numpy_helper.from_array(np.array([-1], np.int64), 'lr_last'),
    ])
    g.node.extend([
        helper.make_node('MatMul', [hidden, 'lr_in'], ['lr_p']),
        helper.make_node('MatMul', ['lr_p', 'lr_out'], ['lr_scores']),
        helper.make_node('TopK', ['lr_scores', 'lr_m'], ['lr_top', 'lr_ids'], axis=-1),  # [n, k, M]
        helper.make_node('Gather', ['embed', 'lr_ids'], ['lr_rows'], axis=0),  # [n, k, M, d]
        helper.make_node('Unsqueeze', [hidden, 'lr_last'], ['lr_h']),  # [n, k, d, 1]
        helper.make_node('MatMul', ['lr_rows', 'lr_h'], ['lr_exact']),  # [n, k, M, 1]
        helper.make_node('ArgMax', ['lr_exact'], ['lr_best'], axis=2, keepdims=1),  # [n, k, 1, 1]
        helper.make_node('Squeeze', ['lr_best', 'lr_last'], ['lr_best2']),
        helper.make_node('GatherElements', ['lr_ids', 'lr_best2'], ['lr_token'], axis=2),
        helper.make_node('Squeeze', ['lr_token', 'lr_last'], ['token_ids']),
    ])
    del g.output[:]
    g.output.append(helper.make_tensor_value_info('token_ids', TensorProto.INT64, ['n', 'k']))
    return model


def int8(src):
    model = onnx.load(src)
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    nodes = []
    for n in g.node:
        weight = inits.get(n.input[1]) if n.op_type == 'MatMul' else None
        if weight is None or len(weight.dims) != 2:
            nodes.append(n)
            continue
        w = numpy_helper.to_array(weight).astype(np.float32)
        scale = np.abs(w).max(axis=0) / 127.0
        scale[scale == 0] = 1.0
        q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
        g.initializer.extend([numpy_helper.from_array(q, f'{weight.name}.q'), numpy_helper.from_array(scale.astype(np.float32), f'{weight.name}.scale')])
        nodes.append(helper.make_node('DynamicQuantizeMatMul', [n.input[0], f'{weight.name}.q', f'{weight.name}.scale'], list(n.output), domain='com.microsoft'))
    used = {i for n in nodes for i in n.input}
    kept = [i for i in g.initializer if i.name in used]
    del g.node[:]
    g.node.extend(nodes)
    del g.initializer[:]
    g.initializer.extend(kept)
    if not any(o.domain == 'com.microsoft' for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid('com.microsoft', 1))
    return model


def main(bundle, out):
    bundle, out = Path(bundle), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dec, head = bundle / 'decoder.onnx', bundle / 'head.onnx'
    onnx.save(body(dec)[0], out / 'decoder_body.onnx')
    for rank, m in [(32, 16), (64, 16), (64, 64), (128, 16)]:
        onnx.save(shortlist(dec, rank, m), out / f'decoder_r{rank}_m{m}.onnx')
    onnx.save(int8(dec), out / 'decoder_int8.onnx')
    onnx.save(int8(head), out / 'head_int8.onnx')
    print(f'wrote {out}')


if __name__ == '__main__':
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
