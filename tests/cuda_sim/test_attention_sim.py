#!/usr/bin/env python3
"""test_attention_sim.py — the control flow of kernels/cuda/attention.cu (attention_kernel) replayed in
Python: query tiles of 64 strided by QSPLIT = 4 blocks, key/value tiles of 64 through "shared memory",
the online softmax in chunks of 8 keys (rescaling only when the running max grows), inactive threads
past the sequence end, and the head mask (0: zeros, no work; other factors scale), against a direct
softmax, on ragged batches including a sequence longer than 4 x 64 queries. Runs without a GPU; it
mirrors the kernel by hand: change both together. Exit 1 on a mismatch."""
import math
import random
import sys
QT=KT=64; CH=8; QS=4
def kernel(out, qkv, off, lens, B, H, D, hmask, scale):
    HD=H*D; S=3*HD
    for b in range(B):
        for h in range(H):
            L=lens[b]; o=off[b]; hm = hmask[h] if hmask else 1.0
            for z in range(QS):
                q0=z*QT
                while q0 < L:
                    # per-thread state
                    st={}
                    for tid in range(QT):
                        i=q0+tid; active=i<L
                        if hm==0.0:
                            if active:
                                for d in range(D): out[(o+i)*HD+h*D+d]=0.0
                            continue
                        q=[qkv[(o+i)*S+h*D+d]*scale if active else 0.0 for d in range(D)]
                        st[tid]=dict(q=q,acc=[0.0]*D,m=-math.inf,l=0.0,active=active)
                    if hm!=0.0:
                        k0=0
                        while k0<L:
                            nk=min(KT,L-k0)
                            Ks=[[qkv[(o+k0+j)*S+HD+h*D+d] for d in range(D)] for j in range(nk)]
                            Vs=[[qkv[(o+k0+j)*S+2*HD+h*D+d] for d in range(D)] for j in range(nk)]
                            for tid,t in st.items():
                                if not t['active']: continue
                                for j0 in range(0,nk,CH):
                                    s=[]; mx=t['m']
                                    for c in range(CH):
                                        j=j0+c; v=-math.inf
                                        if j<nk: v=sum(t['q'][d]*Ks[j][d] for d in range(D))
                                        s.append(v); mx=max(mx,v)
                                    if mx>t['m']:
                                        corr=math.exp(t['m']-mx) if t['m']!=-math.inf else 0.0
                                        t['l']*=corr; t['acc']=[a*corr for a in t['acc']]; t['m']=mx
                                    for c in range(CH):
                                        j=j0+c
                                        if j>=nk: break
                                        p=math.exp(s[c]-t['m']); t['l']+=p
                                        t['acc']=[t['acc'][d]+p*Vs[j][d] for d in range(D)]
                            k0+=KT
                        for tid,t in st.items():
                            if t['active']:
                                i=q0+tid
                                for d in range(D): out[(o+i)*HD+h*D+d]=t['acc'][d]*(hm/t['l'])
                    q0+=QS*QT
def ref(qkv, off, lens, B, H, D, hmask):
    HD=H*D; S=3*HD; out=[None]*(sum(lens)*HD)
    for b in range(B):
        for h in range(H):
            for i in range(lens[b]):
                q=[qkv[(off[b]+i)*S+h*D+d] for d in range(D)]
                sc=[sum(q[d]*qkv[(off[b]+j)*S+HD+h*D+d] for d in range(D))/math.sqrt(D) for j in range(lens[b])]
                mx=max(sc); e=[math.exp(x-mx) for x in sc]; Z=sum(e)
                for d in range(D):
                    v=sum(e[j]*qkv[(off[b]+j)*S+2*HD+h*D+d] for j in range(lens[b]))/Z
                    out[(off[b]+i)*HD+h*D+d]=v*(hmask[h] if hmask else 1.0)
    return out
random.seed(2)
failed = False
for lens,H,D,mask in [([1],2,4,None),([3,64,65,17,1,130],2,4,None),([300,7],1,3,None),([5,70],3,4,[1.0,0.0,0.5])]:
    off=[sum(lens[:i]) for i in range(len(lens))]; T=sum(lens)
    qkv=[random.uniform(-2,2) for _ in range(T*3*H*D)]
    out=[None]*(T*H*D)
    kernel(out,qkv,off,lens,len(lens),H,D,mask,1/math.sqrt(D))
    want=ref(qkv,off,lens,len(lens),H,D,mask)
    bad=sum(1 for a,b in zip(out,want) if a is None or abs(a-b)>1e-9)
    print(lens, H, D, mask, "wrong", bad, "of", len(out))
    failed |= bad != 0
sys.exit(1 if failed else 0)
