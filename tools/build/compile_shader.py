#!/usr/bin/env python3
"""Compiles one GLSL compute shader variant to SPIR-V and validates it.

usage: compile_shader.py GLSLANG SPIRV_VAL|- SOURCE VARIANT OUTPUT.spv

VARIANT names the element types: "f32" sets T, "f32_i32" sets T and U.
Each type defines T=<glsl type> and T_F32/T_I32/T_F64 = 1 (likewise U),
the same macros the OpenCL kernels get, so one source serves every dtype.
"""
import subprocess
import sys

GLSL = {'f32': 'float', 'i32': 'int', 'f64': 'double'}


def main():
    glslang, spirv_val, source, variant, output = sys.argv[1:6]
    defines = []
    for letter, name in zip('TU', variant.split('_')):
        defines += [f'-D{letter}={GLSL[name]}', f'-D{letter}_{name.upper()}=1']
    cmd = [glslang, '-V', '--target-env', 'vulkan1.1', '-S', 'comp', *defines,
           '-o', output, source]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        sys.exit(1)
    if spirv_val != '-':
        r = subprocess.run([spirv_val, '--target-env', 'vulkan1.1', output],
                           capture_output=True, text=True)
        if r.returncode != 0:
            sys.stderr.write(f'spirv-val rejected {source} ({variant}):\n'
                             + r.stdout + r.stderr)
            sys.exit(1)


if __name__ == '__main__':
    main()
