Feature: Storage
  An allocation mounts volumes: a directory of its provider (of a bounded
  size if asked), a prefix of an S3 bucket staged in before the start and
  uploaded after the exit, or one file fetched over HTTP and checked by its
  SHA-256, so that a job's inputs come in and its outputs remain after it
  ends. Credentials stay secret. The S3 server is a real one (versitygw).

  Background:
    Given an S3 server
    And bob offers 1 CPU to alice's deployments

  Scenario: A task writes its result to an S3 volume
    Given the bucket "results"
    When alice deploys with the S3 keys as the secret "keys" the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [write=/out/result.txt:done]}
          volumes:
            out:
              path: /out
              kind: s3
              mode: out
              s3: {bucket: results, endpoint: "<s3>", credentials: {secret: keys}}
      """
    Then the deployment completes within 60 seconds
    And the bucket "results" holds "<deployment>/job/1/result.txt" with "done"

  Scenario: A task reads its input from an S3 volume, which it cannot write
    Given the bucket "inputs" holding "data/numbers.txt" with "1 2 3 5 8"
    When alice deploys with the S3 keys as the secret "keys" the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [cat=/in/numbers.txt, write=/in/x:y]}
          volumes:
            in:
              path: /in
              kind: s3
              mode: in
              s3: {bucket: inputs, prefix: data/, endpoint: "<s3>", credentials: {secret: keys}}
      """
    Then the deployment ends within 60 seconds
    And the logs of "job" contain "1 2 3 5 8"
    And the logs of "job" show that a write was refused as read-only

  Scenario: A local volume keeps a service's data across a restart of its allocation
    When alice deploys the ensemble:
      """
      version: v1
      allocations:
        svc:
          type: service
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [append=/data/log:started, print=---, cat=/data/log, sleep=1s, exit=1]}
          restart: {policy: always, max_restarts: 3, backoff: 100ms}
          volumes:
            data: {path: /data}
      """
    Then within 30 seconds the logs of "svc" hold the lines:
      """
      ---
      started
      started
      """

  Scenario: The credentials of a volume never appear in status, logs, events or the store
    Given the bucket "results"
    When alice deploys with the S3 keys as the secret "keys" the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [write=/out/r:x]}
          volumes:
            out:
              path: /out
              kind: s3
              mode: out
              s3: {bucket: results, endpoint: "<s3>", credentials: {secret: keys}}
      """
    Then the deployment completes within 60 seconds
    And the S3 secret key is in none of `dms -o json deployment status <deployment>`, `dms deployment logs <deployment>`, `dms -o json deployment events <deployment>`
    And the S3 secret key is in no file of alice's or bob's node

  Scenario: A volume of a bucket no server holds fails the allocation with the reason
    When alice deploys with the S3 keys as the secret "keys" the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=never]}
          volumes:
            in:
              path: /in
              kind: s3
              mode: in
              s3: {bucket: no-such-bucket, endpoint: "<s3>", credentials: {secret: keys}}
      """
    Then the deployment ends within 60 seconds
    And the deployment is "failed"
    And the allocation "job" failed with a message containing "volume in" and "no-such-bucket"
    And the S3 secret key is in none of `dms -o json deployment status <deployment>`

  @docker
  Scenario: A job that writes past its local volume's size gets ENOSPC; the node stays healthy
    Given bob offers the docker executor
    When alice deploys the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: docker
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {image: "<workload-image>", cmd: [fill=/scratch/big:16]}
          volumes:
            scratch: {path: /scratch, size: 8MiB}
      """
    Then the deployment ends within 60 seconds
    And the logs of "job" show that a write failed with ENOSPC
    And within 20 seconds no provider holds any resources
    And bob's node answers `dms resources`

  Scenario: A url volume brings a checked file; a wrong hash fails the allocation
    Given a web server with the file "dataset.csv" holding "a,b\n1,2"
    When alice deploys the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [cat=/data/dataset.csv]}
          volumes:
            data: {path: /data, kind: url, url: "<web>/dataset.csv", sha256: "<sha256 of dataset.csv>"}
      """
    Then the deployment completes within 60 seconds
    And the logs of "job" contain "1,2"
    When alice deploys the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [cat=/data/dataset.csv]}
          volumes:
            data: {path: /data, kind: url, url: "<web>/dataset.csv", sha256: "0000000000000000000000000000000000000000000000000000000000000000"}
      """
    Then the deployment ends within 60 seconds
    And the allocation "job" failed with a message containing "volume data" and "sha256"

  Scenario: The results of a local out volume come back with dms deployment results
    When alice deploys the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [write=/results/answer.txt:42, fill=/results/big.bin:3]}
          volumes:
            results: {path: /results, mode: out}
      """
    Then the deployment completes within 60 seconds
    When alice runs `dms deployment results <deployment> -o fetched`
    Then the command succeeds
    And the file "fetched/job/results/answer.txt" contains "42"
    And the file "fetched/job/results/big.bin" has 3145728 bytes

  Scenario: The results of an S3 out volume come back with dms deployment results
    Given the bucket "results"
    When alice deploys with the S3 keys as the secret "keys" the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [write=/out/answer.txt:42]}
          volumes:
            out:
              path: /out
              kind: s3
              mode: out
              s3: {bucket: results, endpoint: "<s3>", credentials: {secret: keys}}
      """
    Then the deployment completes within 60 seconds
    When alice runs `dms deployment results <deployment> -o fetched`
    Then the command succeeds
    And the file "fetched/job/out/answer.txt" contains "42"

  @docker
  Scenario: A container stages its input from S3 and uploads its output
    Given bob offers the docker executor
    And the bucket "inputs" holding "numbers.txt" with "13 21"
    And the bucket "results"
    When alice deploys with the S3 keys as the secret "keys" the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: docker
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {image: "<workload-image>", cmd: [cat=/in/numbers.txt, write=/out/copy.txt:seen, write=/in/x:y]}
          volumes:
            in:
              path: /in
              kind: s3
              mode: in
              s3: {bucket: inputs, endpoint: "<s3>", credentials: {secret: keys}}
            out:
              path: /out
              kind: s3
              mode: out
              s3: {bucket: results, endpoint: "<s3>", credentials: {secret: keys}}
      """
    Then the deployment ends within 90 seconds
    And the logs of "job" contain "13 21"
    And the logs of "job" show that a write was refused as read-only
    And the bucket "results" holds "<deployment>/job/1/copy.txt" with "seen"

  @vm
  Scenario: A microVM stages its input from S3 and uploads its output
    Given bob offers the vm executor
    And a kernel and an initramfs holding the workload and the kernel's virtio and 9p modules, as "vmlinuz" and "initramfs.cpio"
    And the bucket "inputs" holding "numbers.txt" with "34 55"
    And the bucket "results"
    When alice deploys with the S3 keys as the secret "keys" the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: vm
          resources: {cpu: 1, ram: 256MiB}
          execution: {kernel: vmlinuz, initrd: initramfs.cpio, cmd: [/bin/workload, cat=/in/numbers.txt, write=/out/copy.txt:seen, write=/in/x:y]}
          volumes:
            in:
              path: /in
              kind: s3
              mode: in
              s3: {bucket: inputs, endpoint: "<s3>", credentials: {secret: keys}}
            out:
              path: /out
              kind: s3
              mode: out
              s3: {bucket: results, endpoint: "<s3>", credentials: {secret: keys}}
      """
    Then the deployment ends within 180 seconds
    And the logs of "job" contain "34 55"
    And the logs of "job" show that a write was refused as read-only
    And the bucket "results" holds "<deployment>/job/1/copy.txt" with "seen"
