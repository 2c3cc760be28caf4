#!/usr/bin/env python3
"""test_qgemm_sim.py — the index arithmetic of kernels/cuda/qgemm.cu (qgemm_mma_kernel), replayed in
Python with the PTX ISA's fragment layouts of mma.m16n8k32 .s8 (A: (g, 4t..), (g+8, 4t..), (g, 16+4t..),
(g+8, 16+4t..); B: (n g, k 4t..), (n g, k 16+4t..); C: (g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1), with
g = lane / 4, t = lane % 4), on shapes with partial tiles: every output must be written exactly once
with the exact integer product. This runs without a GPU; it checks that the tile loads, the padded
shared-memory rows, the warp tiling and the epilogue agree with the layouts. It mirrors the kernel by
hand: change both together. Exit 1 on a mismatch."""
import random
import sys
BM=BN=64; BK=32; LDS=48
def run(M,N,Kp):
    A=[[random.randint(-127,127) for _ in range(Kp)] for _ in range(M)]
    B=[[random.randint(-127,127) for _ in range(Kp)] for _ in range(N)]
    out={}
    for by in range((M+63)//64):
        for bx in range((N+63)//64):
            m0,n0=by*BM,bx*BN
            As=[[0]*(BM*LDS) for _ in range(2)]; Bs=[[0]*(BN*LDS) for _ in range(2)]
            c={}
            nk=Kp//BK
            for kt in range(nk):
                buf=kt&1
                for tid in range(128):
                    lr=tid>>1; lc=(tid&1)*16
                    for i in range(16):
                        As[buf][lr*LDS+lc+i]=A[m0+lr][kt*BK+lc+i] if m0+lr<M else 0
                        Bs[buf][lr*LDS+lc+i]=B[n0+lr][kt*BK+lc+i] if n0+lr<N else 0
                for tid in range(128):
                    warp,lane=tid>>5,tid&31; g,tig=lane>>2,lane&3
                    wm,wn=(warp>>1)*32,(warp&1)*32
                    for mi in range(2):
                        r=wm+mi*16+g
                        af=[[As[buf][r*LDS+tig*4+i] for i in range(4)],[As[buf][(r+8)*LDS+tig*4+i] for i in range(4)],
                            [As[buf][r*LDS+16+tig*4+i] for i in range(4)],[As[buf][(r+8)*LDS+16+tig*4+i] for i in range(4)]]
                        for ni in range(4):
                            n=wn+ni*8+g
                            bf=[[Bs[buf][n*LDS+tig*4+i] for i in range(4)],[Bs[buf][n*LDS+16+tig*4+i] for i in range(4)]]
                            # store fragments per lane for the warp-wide mma
                            c.setdefault((warp,mi,ni,'a'),{})[lane]=af
                            c.setdefault((warp,mi,ni,'b'),{})[lane]=bf
                # perform mma per warp per (mi,ni) using PTX semantics
                for warp in range(4):
                    for mi in range(2):
                        for ni in range(4):
                            Af=[[0]*32 for _ in range(16)]; Bf=[[0]*8 for _ in range(32)]
                            for lane in range(32):
                                g,tig=lane>>2,lane&3
                                af=c[(warp,mi,ni,'a')][lane]; bf=c[(warp,mi,ni,'b')][lane]
                                for i in range(4):
                                    Af[g][tig*4+i]=af[0][i]; Af[g+8][tig*4+i]=af[1][i]
                                    Af[g][16+tig*4+i]=af[2][i]; Af[g+8][16+tig*4+i]=af[3][i]
                                    Bf[tig*4+i][g]=bf[0][i]; Bf[16+tig*4+i][g]=bf[1][i]
                            for lane in range(32):
                                g,tig=lane>>2,lane&3
                                acc=c.setdefault((warp,mi,ni,'c',lane),[0,0,0,0])
                                for idx,(rr,cc) in enumerate([(g,tig*2),(g,tig*2+1),(g+8,tig*2),(g+8,tig*2+1)]):
                                    acc[idx]+=sum(Af[rr][k]*Bf[k][cc] for k in range(32))
            for warp in range(4):
                wm,wn=(warp>>1)*32,(warp&1)*32
                for lane in range(32):
                    g,tig=lane>>2,lane&3
                    for mi in range(2):
                        for ni in range(4):
                            acc=c[(warp,mi,ni,'c',lane)]
                            m=m0+wm+mi*16+g; n=n0+wn+ni*8+tig*2
                            for (mm,nn,v) in [(m,n,acc[0]),(m,n+1,acc[1]),(m+8,n,acc[2]),(m+8,n+1,acc[3])]:
                                if mm<M and nn<N: out[(mm,nn)]=v
    bad=0
    for m in range(M):
        for n in range(N):
            want=sum(A[m][k]*B[n][k] for k in range(Kp))
            if out.get((m,n))!=want: bad+=1
    print(M, N, Kp, "wrong", bad, "written", len(out), "of", M * N)
    return bad == 0 and len(out) == M * N


random.seed(1)
ok = all([run(5, 24, 32), run(70, 77, 64), run(64, 64, 96), run(1, 130, 32)])
sys.exit(0 if ok else 1)
