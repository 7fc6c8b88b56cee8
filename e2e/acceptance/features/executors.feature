Feature: Executors
  A provider runs each allocation with the executor its ensemble names:
  wasm (a WebAssembly module under wazero, needing nothing installed),
  docker (a container) or vm (a QEMU microVM). Whichever runs it, the job's
  output and exit code come back, and its limits hold.

  Background:
    Given bob offers 1 CPU to alice's deployments

  Scenario: A WebAssembly module runs and its output comes back
    Given the example "hello.yaml"
    When alice runs `dms deploy -f hello.yaml --follow`
    Then the command succeeds
    And the output contains "Hello from dms!"
    And the output contains "args: from the network"

  Scenario: A module's exit code is the deployment's
    Given the ensemble "job.yaml":
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=bye, exit=7]}
      """
    When alice runs `dms deploy -f job.yaml --follow`
    Then the command fails with exit code 7
    And the output contains "bye"

  Scenario: A module that needs more memory than its allocation is stopped
    Given alice has deployed the ensemble:
      """
      version: v1
      allocations:
        hog:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [alloc=256, print=unreachable]}
      """
    When the deployment ends within 30 seconds
    Then the deployment is "failed"
    And the allocation "hog" ended with the reason "oom-killed"

  Scenario: A module that runs past the execution timeout is stopped
    Given alice has deployed the ensemble:
      """
      version: v1
      allocations:
        slow:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=started, sleep=5m]}
      timeouts: {execution: 2s}
      """
    When the deployment ends within 30 seconds
    Then the deployment is "failed"
    And the allocation "slow" ended with the reason "timed-out"

  @docker
  Scenario: A container runs and its output comes back
    Given bob offers the docker executor
    And the ensemble "job.yaml":
      """
      version: v1
      allocations:
        job:
          executor: docker
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {image: "<workload-image>", cmd: [print=hello-from-a-container]}
      """
    When alice runs `dms deploy -f job.yaml --follow`
    Then the command succeeds
    And the output contains "hello-from-a-container"

  @docker
  Scenario: A container's exit code is the deployment's
    Given bob offers the docker executor
    And the ensemble "job.yaml":
      """
      version: v1
      allocations:
        job:
          executor: docker
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {image: "<workload-image>", cmd: [print=bye, exit=5]}
      """
    When alice runs `dms deploy -f job.yaml --follow`
    Then the command fails with exit code 5
    And the output contains "bye"

  @docker
  Scenario: A container that needs more memory than its allocation is stopped
    Given bob offers the docker executor
    And alice has deployed the ensemble:
      """
      version: v1
      allocations:
        hog:
          executor: docker
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {image: "<workload-image>", cmd: [alloc=256, print=unreachable]}
      """
    When the deployment ends within 30 seconds
    Then the deployment is "failed"
    And the allocation "hog" ended with the reason "oom-killed"

  @vm
  Scenario: A microVM boots a program and its output comes back
    Given bob offers the vm executor
    And a kernel and an initramfs holding the workload, as "vmlinuz" and "initramfs.cpio"
    And the ensemble "vm.yaml":
      """
      version: v1
      allocations:
        job:
          executor: vm
          resources: {cpu: 1, ram: 256MiB}
          execution: {kernel: vmlinuz, initrd: initramfs.cpio, cmd: [/bin/workload, print=hello-from-a-vm, exit=3]}
      """
    When alice runs `dms deploy -f vm.yaml --follow`
    Then the command fails with exit code 3
    And the output contains "hello-from-a-vm"

  @vm
  Scenario: A provider boots a microVM job that brings no kernel with its own
    Given bob offers the vm executor
    And bob's node boots vm jobs that bring no kernel with its own
    And an initramfs holding the workload, as "initramfs.cpio"
    And the ensemble "vm-own-kernel.yaml":
      """
      version: v1
      allocations:
        job:
          executor: vm
          resources: {cpu: 1, ram: 256MiB}
          execution: {initrd: initramfs.cpio, cmd: [/bin/workload, print=booted-on-the-providers-kernel]}
      """
    When alice runs `dms deploy -f vm-own-kernel.yaml --follow`
    Then the command succeeds
    And the output contains "booted-on-the-providers-kernel"

  @vm @exec
  Scenario: deployment exec runs a command in a running microVM, beside its payload
    Given bob offers the vm executor
    And a kernel and an initramfs holding the workload and the kernel's virtio modules, as "vmlinuz" and "initramfs.cpio"
    And alice has deployed, without waiting, the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: vm
          resources: {cpu: 1, ram: 256MiB}
          execution: {kernel: vmlinuz, initrd: initramfs.cpio, cmd: [/bin/workload, sleep=10m]}
      """
    And within 120 seconds the deployment is "running" with the allocation "job" "running"
    When alice runs `dms deployment exec <deployment> job -- /bin/workload print=hello-from-inside-the-vm exit=4`
    Then the command fails with exit code 4
    And the output contains "hello-from-inside-the-vm"
    When alice runs `dms deployment exec -i <deployment> job -- /bin/workload cat=/dev/stdin` with the input "typed into the vm\n"
    Then the command succeeds
    And the output contains "typed into the vm"
