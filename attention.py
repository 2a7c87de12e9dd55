"""attention.py — 작성 중인 모듈(자리 표시).

이 파일은 곧 실제 구현으로 채워진다. 지금은 import 해도 부작용이 없음을 보인다.

>>> 1 + 1
2
>>> __name__.endswith("attention")
True
>>> len("attention") > 0
True
"""
